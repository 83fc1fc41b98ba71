package repocheck

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.email=t@t", "-c", "user.name=t"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "git %v: %s", args, out)
}

// The check passes on a clean tree and fails on a tracked ELF file or a
// large file outside docs/, naming it.
func TestTrackedBinariesFailLint(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("SKIPPED: no git")
	}
	if os.Getenv("PILEBRIDGE_QEMU") != "" {
		t.Skip("a shell script's test: the native pass runs it")
	}
	script, err := filepath.Abs("../../.ci/tracked-binaries")
	require.NoError(t, err)
	check := func(dir string) (string, error) {
		cmd := exec.Command("bash", script)
		cmd.Env = append(os.Environ(), "REPO="+dir)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	dir := t.TempDir()
	git(t, dir, "init", "-q")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "docs"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "docs", "big.png"), make([]byte, 2<<20), 0o644))
	git(t, dir, "add", ".")
	out, err := check(dir)
	require.NoError(t, err, "a clean tree passes: %s", out)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "pilesim"), append([]byte{0x7f, 'E', 'L', 'F'}, make([]byte, 100)...), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "data.bin"), make([]byte, 2<<20), 0o644))
	git(t, dir, "add", ".")
	out, err = check(dir)
	require.Error(t, err)
	assert.Contains(t, out, "tracked binary (ELF): pilesim")
	assert.Contains(t, out, "over 1 MB outside docs/: data.bin")
	assert.False(t, strings.Contains(out, "big.png"), "docs/ may hold large files")
}

// Issue 29: the CLI only parses flags and prints; the daemon's API has one
// client, station.Client. No program under cmd/ builds an HTTP request by
// hand or uses a client without a timeout.
func TestNoHandMadeRequestsUnderCmd(t *testing.T) {
	root := filepath.Join("..", "..", "cmd")
	hand := regexp.MustCompile(`http\.(NewRequest|NewRequestWithContext|DefaultClient|Get|Post|PostForm|Head)\b|&?http\.Client\{`)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if hand.MatchString(line) {
				t.Errorf("%s:%d builds an HTTP request by hand (use station.Client): %s", path, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The unit's DeviceAllow list and docs/hardware.md's table of serial
// drivers name the same drivers.
func TestUnitDeviceAllowMatchesTheDocs(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join("..", "..", "deploy", "pilebridge.service"))
	require.NoError(t, err)
	docs, err := os.ReadFile(filepath.Join("..", "..", "docs", "hardware.md"))
	require.NoError(t, err)
	var inUnit, inDocs []string
	for _, m := range regexp.MustCompile(`(?m)^DeviceAllow=char-(\S+) rw$`).FindAllStringSubmatch(string(unit), -1) {
		inUnit = append(inUnit, m[1])
	}
	for _, m := range regexp.MustCompile("(?m)^\\| `(tty\\w+)` \\|").FindAllStringSubmatch(string(docs), -1) {
		inDocs = append(inDocs, m[1])
	}
	require.NotEmpty(t, inUnit)
	assert.ElementsMatch(t, inUnit, inDocs, "deploy/pilebridge.service's DeviceAllow and docs/hardware.md's table")
}
