package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/internal/config"
)

// The demo's config keeps everything of the user's but where it writes and
// listens: a real config's data_dir (with unsent bills) is never used.
func TestDemoConfigIsolatesTheDemo(t *testing.T) {
	orig, err := config.Load("../../configs/demo.yaml")
	require.NoError(t, err)
	work := t.TempDir()
	path, err := demoConfig("../../configs/demo.yaml", work)
	require.NoError(t, err)
	cfg, err := config.Load(path)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(cfg.DataDir, work), "data_dir %s", cfg.DataDir)
	assert.True(t, strings.HasPrefix(cfg.Buses[0].Device, work), "device %s", cfg.Buses[0].Device)
	assert.NotEqual(t, orig.Listen, cfg.Listen)
	assert.NotEqual(t, orig.Platform.BaseURL, cfg.Platform.BaseURL)
	assert.Equal(t, orig.Piles, cfg.Piles)
	assert.Equal(t, orig.Tariff, cfg.Tariff)
	assert.Equal(t, orig.Platform.AppSecret, cfg.Platform.AppSecret)

	second, err := demoConfig("../../configs/demo.yaml", t.TempDir())
	require.NoError(t, err)
	cfg2, err := config.Load(second)
	require.NoError(t, err)
	assert.NotEqual(t, cfg.Listen, cfg2.Listen, "two demos do not collide")
	assert.NotEqual(t, cfg.Platform.BaseURL, cfg2.Platform.BaseURL)
	_, err = os.Stat(filepath.Join(work, "pilebridge.yaml"))
	assert.NoError(t, err)
}

// pilesim and every subcommand answer --help with exit 0.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"serve", "--help"}, {"platform", "-h"},
		{"demo", "--help"}, {"scale", "--help"}, {"floor", "--help"}} {
		var out, errs strings.Builder
		assert.Equal(t, 0, run(args, &out, &errs), "%v: %s", args, errs.String())
	}
	var out, errs strings.Builder
	assert.Equal(t, 1, run([]string{"frobnicate"}, &out, &errs))
	assert.Contains(t, errs.String(), `unknown command "frobnicate"`)
}
