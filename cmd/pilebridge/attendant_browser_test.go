package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// typeSlowly types s into the field at sel a character at a time, as a
// person on a phone does (slower than the status page's 5 s refresh over
// the whole entry: a page that reloaded would lose it).
func typeSlowly(sel chromedp.CSS, s string, each time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for _, r := range s {
			if _, err := chromedp.SendKeys(sel, string(r))(ctx, tg); err != nil {
				return err
			}
			time.Sleep(each)
		}
		return nil
	})
}

// Issue 27: in Chromium at 390 px, an attendant types a code and a plate
// slowly on the page of a port whose bill waits for its plate: first a
// wrong code (refused in the page's language, the plate kept), then the
// right one; the bill leaves with that plate and the ledger names the
// attendant.
func TestAttendantOnAPhone(t *testing.T) {
	t.Parallel()
	bin := browser(t)
	s := newStationWith(t, "ref-ac", attendantConfig)
	s.startBridge()
	base := "http://" + s.listenAddr()
	ctxCharging(t, s)
	delta := s.acSession(7000, func() { time.Sleep(1500 * time.Millisecond) })
	s.waitFor("the bill waiting for its plate", 10*time.Second, func() bool {
		return strings.Contains(s.log(), "bill waits for a plate")
	})
	require.Empty(t, s.finals(), "held for its plate")

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(t.TempDir()))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	start := time.Now()
	require.NoError(t, chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3)),
		chromedp.Navigate(base+"/attendant?lang=zh&port=E2E01/1"),
		chromedp.WaitVisible(chromedp.CSS("#plate")),
		typeSlowly("#plate", "川a12345", 400*time.Millisecond),
		typeSlowly("#code", "480732", 400*time.Millisecond),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#error")),
	))
	errText, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#error")))
	require.NoError(t, err)
	plateKept, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#plate")))
	require.NoError(t, err)
	lang, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.lang`))
	require.NoError(t, err)
	assert.Contains(t, errText, "值班码不对", "the mistake in the page's language")
	assert.Equal(t, "川a12345", plateKept, "what was typed is kept")
	assert.Equal(t, "zh-CN", lang)

	portText, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS("#port option[selected]")))
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Clear(chromedp.CSS("#code")),
		typeSlowly("#code", "480731", 400*time.Millisecond),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#done")),
	))
	done, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#done")))
	require.NoError(t, err)
	url, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	took := time.Since(start)
	t.Logf("the attendant's entry, a wrong code and the right one, typed at 0.4 s a character: %s", took.Round(100*time.Millisecond))
	assert.Contains(t, portText, "账单等待车牌", "the port is listed with its bill waiting for a plate")
	assert.Contains(t, done, "已登记到 E2E01/1")
	assert.Contains(t, done, "已随车牌上传", "the waiting bill leaves with it")
	assert.Contains(t, url, "lang=zh", "?lang kept")

	s.waitFor("the final bill", 10*time.Second, func() bool { return len(s.finals()) == 1 })
	f := s.finals()[0]
	assert.Equal(t, "川A12345", f.Plate)
	assert.Equal(t, delta, f.Quantity)
	assert.Contains(t, get(t, base+"/status", s.token()).body, `"plate_by": "王师傅"`, "the ledger names the attendant")
}
