package procmem_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"pilebridge/internal/procmem"
)

// A file mapped whole but touched in part since ClearRefs counts only the
// part touched, though all of it is resident: the working set leaves out
// what fault-around or an earlier phase mapped and nothing uses.
func TestFileTouchedCountsOnlyPagesTouchedSinceClear(t *testing.T) {
	if os.Getenv("PILEBRIDGE_QEMU") != "" {
		t.Skip("qemu-user answers /proc/self/smaps itself and counts no page referenced: a benchmark's memory is read on this machine, or on the emulated board (make bench-board)")
	}
	const size, touch = 8 << 20, 2 << 20
	path := filepath.Join(t.TempDir(), "mapped")
	require.NoError(t, os.WriteFile(path, make([]byte, size), 0o600))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	require.NoError(t, err)
	defer syscall.Munmap(mem)
	page := os.Getpagesize()
	var sink byte
	for i := 0; i < size; i += page {
		sink += mem[i] // every page resident and mapped
	}
	pid := os.Getpid()
	require.NoError(t, procmem.ClearRefs(pid))
	for i := 0; i < touch; i += page {
		sink += mem[i]
	}
	require.Zero(t, sink, "the file holds zeros") // and the reads are not optimised away
	maps, err := procmem.Smaps(pid)
	require.NoError(t, err)
	var found bool
	for _, m := range maps {
		if m.Path == path {
			found = true
			assert.Equal(t, int64(size), m.RSS, "the whole file is resident and mapped")
			assert.Equal(t, int64(touch), m.FileTouched(), "only the pages touched since the clear count")
		}
	}
	require.True(t, found, "%s is not among the mappings", path)
	assert.GreaterOrEqual(t, procmem.FileTouched(maps), int64(touch), "the process's sum holds the mapping's")
}

// A private file mapping's written pages are the process's own (RssAnon):
// they are not counted again as file pages, however referenced.
func TestFileTouchedLeavesOutAnonymousPages(t *testing.T) {
	smaps := `00400000-00a00000 r-xp 00000000 08:01 1234                               /usr/bin/pilebridge
Size:               6144 kB
Rss:                5500 kB
Anonymous:             0 kB
Referenced:         1200 kB
VmFlags: rd ex mr mw me dw
01000000-01100000 rw-p 00c00000 08:01 1234                               /usr/bin/pilebridge
Rss:                 100 kB
Anonymous:            60 kB
Referenced:           80 kB
c000000000-c004000000 rw-p 00000000 00:00 0
Rss:                3000 kB
Anonymous:          3000 kB
Referenced:         3000 kB
`
	maps, err := procmem.ParseSmaps(strings.NewReader(smaps), "smaps")
	require.NoError(t, err)
	require.Len(t, maps, 3)
	assert.Equal(t, "/usr/bin/pilebridge", maps[0].Path)
	assert.Equal(t, int64((1200+40)*1024), procmem.FileTouched(maps))

	_, err = procmem.ParseSmaps(strings.NewReader("00400000-00a00000 r-xp 00000000 08:01 1 /x\nRss: lots kB\n"), "smaps")
	assert.ErrorContains(t, err, `Rss " lots kB"`)
}
