package station

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"pilebridge/internal/config"
)

// tokenPath is where the local API's bearer token is kept.
func TokenPath(cfg *config.Config) string {
	if cfg.ListenTokenFile != "" {
		return cfg.ListenTokenFile
	}
	return filepath.Join(cfg.DataDir, "listen_token")
}

// ensureToken reads the token, creating it (0600) if the file is missing.
func ensureToken(cfg *config.Config) (string, error) {
	path := TokenPath(cfg)
	if b, err := os.ReadFile(path); err == nil {
		tok := strings.TrimSpace(string(b))
		if len(tok) < 16 {
			return "", fmt.Errorf("listen_token_file %s: want at least 16 characters", path)
		}
		return tok, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("listen_token_file: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(raw[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return "", fmt.Errorf("listen_token_file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("listen_token_file: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("listen_token_file: %w", err)
	}
	return tok, f.Close()
}

// readToken is the CLI's side: the token the daemon created.
func ReadToken(cfg *config.Config) (string, error) {
	b, err := os.ReadFile(TokenPath(cfg))
	if err != nil {
		return "", fmt.Errorf("the daemon's API token: %w (run as the service user or root)", err)
	}
	return strings.TrimSpace(string(b)), nil
}

type guard struct {
	names map[string]bool // allowed Host names besides IP literals
	token string
	next  http.Handler
}

func newGuard(cfg *config.Config, token string, next http.Handler) *guard {
	g := &guard{names: map[string]bool{"localhost": true}, token: token, next: next}
	if h, _, err := net.SplitHostPort(cfg.Listen); err == nil && h != "" {
		g.names[strings.ToLower(h)] = true
	}
	for _, h := range cfg.ListenHosts {
		g.names[strings.ToLower(h)] = true
	}
	return g
}

func (g *guard) allowedHost(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
	return net.ParseIP(h) != nil || g.names[h]
}

// authorizedKey marks a request that carried the bearer token.
type authorizedKey struct{}

// authorized says the request carried the local API's token: personal data
// (VIN, plate, mobile) is shown unmasked only then.
func authorized(r *http.Request) bool {
	ok, _ := r.Context().Value(authorizedKey{}).(bool)
	return ok
}

func (g *guard) hasToken(r *http.Request) bool {
	// the scheme is case-insensitive (RFC 9110 §11.1)
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(g.token)) == 1
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if !g.allowedHost(r.Host) {
		http.Error(w, fmt.Sprintf("host %q is not this board's: add it to listen_hosts", r.Host), http.StatusMisdirectedRequest)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || !g.allowedHost(u.Host) || u.Host != r.Host {
				http.Error(w, "cross-site request refused", http.StatusForbidden)
				return
			}
		}
		if !g.hasToken(r) && !isCameraPush(r) && !isAttendantForm(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pilebridge"`)
			http.Error(w, "a bearer token is needed (listen_token_file)", http.StatusUnauthorized)
			return
		}
	}
	if g.hasToken(r) {
		r = r.WithContext(context.WithValue(r.Context(), authorizedKey{}, true))
	}
	g.next.ServeHTTP(w, r)
}

// isCameraPush: a camera's push (POST /plates/camera[/SECRET],
// /plates/hikvision[/SECRET], Dahua's /NotificationInfo/…), which cameras
// send without a token (the plate hub checks their address and secret
// instead).
func isCameraPush(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	for _, p := range []string{"/plates/camera", "/plates/hikvision"} {
		if r.URL.Path == p || strings.HasPrefix(r.URL.Path, p+"/") {
			return true
		}
	}
	return r.URL.Path == "/NotificationInfo/TollgateInfo" || r.URL.Path == "/NotificationInfo/KeepAlive"
}
