// Package procmem reads what /proc tells of a process that a benchmark
// measures: its CPU time and its memory.
package procmem

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Mem is a process's resident memory and what it is made of: its own
// pages (heap, stacks, written data) and file pages mapped in (mostly the
// binary's), and of those the ones it touched since ClearRefs.
//
// The kernel maps up to 64 KiB of page-cached file around each page fault
// (fault-around), so RSS holds most of a binary the process never runs.
// Those pages are clean and shared with the page cache: under memory
// pressure the kernel drops the untouched ones first, at no cost. What
// the process needs in RAM is its own pages (a board has no swap) and the
// file pages it keeps touching: its working set.
type Mem struct{ RSS, Anon, File, FileTouched int64 }

// WorkingSet is what the process needs in RAM: its own pages and the file
// pages it touched.
func (m Mem) WorkingSet() int64 { return m.Anon + m.FileTouched }

// Read reads pid's resident memory; FileTouched counts the file pages
// touched since the last ClearRefs (since they were mapped, if never).
func Read(pid int) (Mem, error) {
	var m Mem
	var err1, err2, err3 error
	m.RSS, err1 = Status(pid, "VmRSS:")
	m.Anon, err2 = Status(pid, "RssAnon:")
	m.File, err3 = Status(pid, "RssFile:")
	maps, err4 := Smaps(pid)
	m.FileTouched = FileTouched(maps)
	return m, errors.Join(err1, err2, err3, err4)
}

// ClearRefs clears the accessed bits of pid's pages, so that smaps'
// Referenced counts only pages touched from now on.
func ClearRefs(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("1"), 0)
}

// FileTouched sums the mappings' file pages referenced since ClearRefs.
func FileTouched(maps []Mapping) int64 {
	var sum int64
	for _, m := range maps {
		sum += m.FileTouched()
	}
	return sum
}

// Mapping is one entry of /proc/PID/smaps, in bytes.
type Mapping struct {
	Path                  string
	RSS, Anon, Referenced int64
}

// FileTouched is the mapping's referenced pages, but no more than its pages
// that are not anonymous (a private file mapping's written pages are the
// process's own, counted in RssAnon already).
func (m Mapping) FileTouched() int64 { return min(m.Referenced, max(m.RSS-m.Anon, 0)) }

// Smaps reads /proc/PID/smaps.
func Smaps(pid int) ([]Mapping, error) {
	name := fmt.Sprintf("/proc/%d/smaps", pid)
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseSmaps(f, name)
}

// ParseSmaps reads smaps text (name says whose, for errors).
func ParseSmaps(r io.Reader, name string) ([]Mapping, error) {
	var maps []Mapping
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		key, val, ok := strings.Cut(line, ":")
		if !ok || strings.ContainsRune(key, ' ') {
			// a mapping's header: "start-end perms offset dev inode [path]"
			f := strings.Fields(line)
			m := Mapping{}
			if len(f) >= 6 {
				m.Path = strings.Join(f[5:], " ")
			}
			maps = append(maps, m)
			continue
		}
		if len(maps) == 0 {
			return nil, fmt.Errorf("%s: %q before any mapping", name, line)
		}
		m := &maps[len(maps)-1]
		var dst *int64
		switch key {
		case "Rss":
			dst = &m.RSS
		case "Anonymous":
			dst = &m.Anon
		case "Referenced":
			dst = &m.Referenced
		default:
			continue
		}
		n, err := kBytes(val)
		if err != nil {
			return nil, fmt.Errorf("%s: %s %q: %w", name, key, val, err)
		}
		*dst = n
	}
	return maps, sc.Err()
}

// CPUTicks is utime+stime of pid (fields 14 and 15 of /proc/PID/stat,
// counted after the parenthesised command name, which may hold spaces);
// an error once the process has exited, though not yet reaped.
func CPUTicks(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	if f[0] == "Z" {
		return 0, fmt.Errorf("process %d has exited", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return u + s, nil
}

// PeakRSS is VmHWM of pid, in bytes.
func PeakRSS(pid int) (int64, error) { return Status(pid, "VmHWM:") }

// Status is a kB line of /proc/PID/status (VmHWM:, VmRSS:), in bytes.
func Status(pid int, key string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			n, err := kBytes(v)
			if err != nil {
				return 0, fmt.Errorf("%s %q: %w", key, v, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, key)
}

// kBytes reads a /proc value such as "  1234 kB" as bytes.
func kBytes(v string) (int64, error) {
	kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
	return kb * 1024, err
}
