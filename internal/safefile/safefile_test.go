package safefile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A link planted at the name is replaced, and what it points to is left
// as it was.
func TestWriteReplacesALink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "shadow")
	require.NoError(t, os.WriteFile(victim, []byte("root's own"), 0o600))
	name := filepath.Join(dir, "listen.addr")
	require.NoError(t, os.Symlink(victim, name))
	require.NoError(t, Write(name, []byte("127.0.0.1:9100\n"), 0o600))
	got, err := os.ReadFile(victim)
	require.NoError(t, err)
	assert.Equal(t, "root's own", string(got), "the link's target untouched")
	st, err := os.Lstat(name)
	require.NoError(t, err)
	assert.True(t, st.Mode().IsRegular(), "the link replaced by the file")
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	got, err = os.ReadFile(name)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9100\n", string(got))
	left, _ := filepath.Glob(filepath.Join(dir, ".*.tmp"))
	assert.Empty(t, left)
}
