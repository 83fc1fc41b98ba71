package station

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"pilebridge/internal/config"
	"pilebridge/uploader"
)

// Client is the CLI's side of the running daemon's local API (web.go is
// the other): one owner for its paths, paging, types, the token and
// timeouts.
type Client struct {
	base  string // http://host:port
	token string // "" without the permission to read it: answers come masked
	hc    *http.Client
}

// clientTimeout bounds one request; a hot backup of a large database is
// given longer.
const (
	clientTimeout = 15 * time.Second
	backupTimeout = 2 * time.Minute
)

// NewClient finds the daemon of cfg: its listen address (where it wrote
// it down when it picked a port) and its token.
func NewClient(cfg *config.Config) (*Client, error) {
	if cfg.Listen == "" {
		return nil, fmt.Errorf("the daemon holds the database and has no listen address: stop it, or set listen in the config")
	}
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %q: %w", cfg.Listen, err)
	}
	if port == "0" { // the daemon picked a port and wrote down where
		b, err := os.ReadFile(ListenAddrFile(cfg))
		if err != nil {
			return nil, fmt.Errorf("listen %s: the running daemon's address: %w", cfg.Listen, err)
		}
		if host, port, err = net.SplitHostPort(strings.TrimSpace(string(b))); err != nil {
			return nil, fmt.Errorf("listen address in %s: %w", ListenAddrFile(cfg), err)
		}
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1" // listening on every address: ask on loopback
	}
	tok, _ := ReadToken(cfg) // without it, reads come masked and writes are refused (said then)
	return &Client{base: "http://" + net.JoinHostPort(host, port), token: tok, hc: &http.Client{Timeout: clientTimeout}}, nil
}

// call sends one request and decodes a 200's JSON answer into out; it
// returns the next page's path from a Link header, if any.
func (c *Client) call(method, path string, body any, out any, timeout time.Duration, needToken bool) (string, error) {
	if needToken && c.token == "" {
		return "", fmt.Errorf("cannot read the local API's token (listen_token_file): run as root or as the daemon's user")
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return "", err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return "", err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := c.hc
	if timeout > 0 && timeout != hc.Timeout {
		hc = &http.Client{Timeout: timeout}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("ask the running daemon: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("the daemon answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	next := ""
	if m := linkNext.FindStringSubmatch(resp.Header.Get("Link")); m != nil {
		next = m[1]
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		return "", fmt.Errorf("the daemon's answer to %s %s: %w", method, path, err)
	}
	return next, nil
}

var linkNext = regexp.MustCompile(`<([^>]+)>;\s*rel="next"`)

// Outbox is GET /outbox, every page.
func (c *Client) Outbox(all bool) (OutboxListing, error) {
	path := "/outbox"
	if all {
		path += "?all=1"
	}
	l := OutboxListing{Pending: []uploader.Entry{}, Parked: []uploader.Entry{}, Delivered: []uploader.Entry{}}
	for path != "" {
		var page OutboxListing
		next, err := c.call(http.MethodGet, path, nil, &page, 0, false)
		if err != nil {
			return l, err
		}
		l.Pending, l.Parked, l.Delivered = append(l.Pending, page.Pending...), append(l.Parked, page.Parked...), append(l.Delivered, page.Delivered...)
		path = next
	}
	return l, nil
}

// Sessions is GET /sessions between since and until (zero: open), every page.
func (c *Client) Sessions(since, until time.Time) ([]uploader.LedgerEntry, error) {
	q := url.Values{}
	if !since.IsZero() {
		q.Set("since", since.Format(time.RFC3339Nano))
	}
	if !until.IsZero() {
		q.Set("until", until.Format(time.RFC3339Nano))
	}
	var out []uploader.LedgerEntry
	for path := "/sessions?" + q.Encode(); path != ""; {
		var page []uploader.LedgerEntry
		next, err := c.call(http.MethodGet, path, nil, &page, 0, false)
		if err != nil {
			return nil, err
		}
		out, path = append(out, page...), next
	}
	return out, nil
}

// Retry is POST /outbox/retry: the order's parked record, or every parked
// one when order is "".
func (c *Client) Retry(order string) (RequeueResult, error) {
	q := url.Values{}
	if order != "" {
		q.Set("order", order)
	} else {
		q.Set("parked", "1")
	}
	var res RequeueResult
	_, err := c.call(http.MethodPost, "/outbox/retry?"+q.Encode(), nil, &res, 0, true)
	return res, err
}

// Plate is POST /plates/attendant: the attendant's plate for port.
func (c *Client) Plate(port, plate string) (PlateInput, error) {
	var got PlateInput
	_, err := c.call(http.MethodPost, "/plates/attendant", PlateInput{Port: port, Plate: plate}, &got, 0, true)
	return got, err
}

// Backup is POST /db/backup: a hot copy written by the daemon.
func (c *Client) Backup() (BackupResult, error) {
	var res BackupResult
	_, err := c.call(http.MethodPost, "/db/backup", nil, &res, backupTimeout, true)
	return res, err
}

// NewClientAt is a client of the daemon listening at addr (host:port),
// without its token: what anyone on the network may read.
func NewClientAt(addr string) *Client {
	return &Client{base: "http://" + addr, hc: &http.Client{Timeout: clientTimeout}}
}

// Metrics is GET /metrics, the Prometheus text exposition.
func (c *Client) Metrics() ([]byte, error) {
	resp, err := c.hc.Get(c.base + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("ask the running daemon: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the daemon answered %s to /metrics", resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 16<<20))
}

// Profile is GET /debug/pprof/KIND?QUERY from a daemon run with --pprof,
// this client made with NewClientAt(that address): a CPU profile
// (kind "profile", query "seconds=N") takes as long as it asks for, and
// wait bounds the whole call.
func (c *Client) Profile(ctx context.Context, kind, query string, wait time.Duration) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/debug/pprof/"+kind+"?"+query, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: wait}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask the running daemon for its %s profile: %w", kind, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the daemon answered %s to /debug/pprof/%s", resp.Status, kind)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 256<<20))
}
