// Package boltwalk reads a bbolt database file without bbolt: every page is
// read with ReadAt and bounds-checked, from the newest valid meta page's
// root down, so a damaged file gives a list of damage instead of a panic.
//
// Why not bbolt itself: opening a file whose free-list is not stored walks
// every page, and a bad page fails an assertion in a goroutine of bbolt's
// own (freepages), which no recover in the caller reaches: the process
// exits 2. The daemon checks its file with Walk before bbolt opens it, and
// `pilebridge db salvage` copies what Walk could read.
//
// The format (go.etcd.io/bbolt v1.4, internal/common): a page starts with
// id u64, flags u16, count u16, overflow u32; meta pages 0 and 1 hold magic,
// version, page size, flags, the root bucket (root u64, sequence u64), the
// free-list page, the high-water page id, the transaction id and an FNV-64a
// checksum of the fields before it. Branch elements are pos, ksize u32 and a
// page id; leaf elements are flags, pos, ksize, vsize u32, with pos counted
// from the element itself. A value flagged as a bucket is a bucket header
// (root, sequence), followed by an inline page when root is 0. Integers are
// little-endian on every board we build for.
package boltwalk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strings"
)

const (
	pageHeaderSize = 16
	elemSize       = 16
	branchFlag     = 0x01
	leafFlag       = 0x02
	metaFlag       = 0x04
	bucketLeafFlag = 0x01
	magic          = 0xED0CDAED
	version        = 2
	maxDepth       = 64
)

// ErrNotBolt: no meta page of the file is valid.
var ErrNotBolt = errors.New("not a bbolt database (no valid meta page)")

// Damage is one part of the tree that could not be read: everything below
// Page in Bucket is missing from the walk.
type Damage struct {
	Bucket string // "/"-joined path of nested buckets; "" for the root
	Page   uint64
	Err    string
}

func (d Damage) String() string {
	b := d.Bucket
	if b == "" {
		b = "(root)"
	}
	return fmt.Sprintf("bucket %s, page %d: %s", b, d.Page, d.Err)
}

// Result is what a walk read.
type Result struct {
	// Buckets holds every key and value read, by bucket path.
	Buckets map[string]map[string][]byte
	// Sequences are the buckets' sequence counters (NextSequence).
	Sequences map[string]uint64
	Damage    []Damage
	// Loose are the keys and values on leaf pages the walk did not reach,
	// read only when the tree is damaged: the leaves of a lost branch, and
	// old copies bbolt had freed. Their bucket is not known and a copy may
	// be stale; a salvage rule decides what, if anything, to take.
	Loose    []KV
	TxID     uint64
	PageSize int
}

// KV is a key and value read from leaf page Page. Bucket is the name of
// the inline bucket it was in (a small bucket lives inside its parent's
// leaf), "" when the bucket is not known.
type KV struct {
	Page       uint64
	Bucket     string
	Key, Value []byte
}

// Err is nil when nothing was damaged, else an error listing the damage.
func (r *Result) Err() error {
	if len(r.Damage) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d damaged part(s): ", len(r.Damage))
	for i, d := range r.Damage {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(r.Damage)-3)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(d.String())
	}
	return errors.New(b.String())
}

type walker struct {
	f        io.ReaderAt
	size     int64
	pageSize int
	highPgid uint64
	res      *Result
	seen     map[uint64]bool
}

// Walk reads every bucket, key and value reachable from the newest valid
// meta page of the file at path. The error is for a file that cannot be
// read at all; a damaged tree is reported in Result.Damage.
func Walk(path string) (*Result, error) { return onFile(path, WalkReader) }

// WalkReader is Walk on an open file of size bytes.
func WalkReader(f io.ReaderAt, size int64) (*Result, error) {
	m, err := newestMeta(f, size)
	if err != nil {
		return nil, err
	}
	w := newWalker(f, size, m)
	w.bucket("", m.root, nil, 0)
	if len(w.res.Damage) > 0 {
		w.loose()
	}
	return w.res, nil
}

// Scavenge reads every copy of the data the file at path still holds, for
// salvage: the tree of the newest valid meta page as Walk does; when that
// tree is damaged, the tree of the other meta page (bbolt keeps the
// previous transaction's tree behind it, copy-on-write) and every leaf page
// neither tree reached (freed pages hold older copies) go to Loose. A file
// with no valid meta page is read page by page at the page size its pages
// show; that is damage, not an error.
func Scavenge(path string) (*Result, error) { return onFile(path, ScavengeReader) }

// ScavengeReader is Scavenge on an open file of size bytes.
func ScavengeReader(f io.ReaderAt, size int64) (*Result, error) {
	metas := validMetas(f, size)
	if len(metas) == 0 {
		ps := guessPageSize(f, size)
		w := newWalker(f, size, meta{pageSize: uint32(ps), pgid: uint64(size / int64(ps))})
		w.damage("", 0, "%v; every page read as %d bytes", ErrNotBolt, ps)
		w.loose()
		return w.res, nil
	}
	w := newWalker(f, size, metas[0])
	w.bucket("", metas[0].root, nil, 0)
	if len(w.res.Damage) == 0 {
		return w.res, nil
	}
	for _, old := range metas[1:] {
		// the previous transaction's tree: what it reads is a copy as old
		// as that transaction, so it goes to Loose with its bucket known
		ow := newWalker(f, size, old)
		ow.bucket("", old.root, nil, 0)
		for path, kvs := range ow.res.Buckets {
			for k, v := range kvs {
				w.res.Loose = append(w.res.Loose, KV{Bucket: path, Key: []byte(k), Value: v})
			}
		}
		for pg := range ow.seen {
			w.seen[pg] = true
		}
		w.highPgid = max(w.highPgid, old.pgid)
	}
	w.loose()
	return w.res, nil
}

// onFile runs read on the file at path.
func onFile(path string, read func(io.ReaderAt, int64) (*Result, error)) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return read(f, st.Size())
}

// newWalker walks the tree of meta page m.
func newWalker(f io.ReaderAt, size int64, m meta) *walker {
	return &walker{f: f, size: size, pageSize: int(m.pageSize), highPgid: m.pgid, seen: map[uint64]bool{},
		res: &Result{Buckets: map[string]map[string][]byte{}, Sequences: map[string]uint64{}, TxID: m.txid, PageSize: int(m.pageSize)}}
}

// guessPageSize is the page size at which most of the file's first pages
// identify as themselves (a page starts with its own id): for a file whose
// meta pages, which record the size, are both gone.
func guessPageSize(f io.ReaderAt, size int64) int {
	best, bestN := 4096, 0
	var hdr [pageHeaderSize]byte
	for _, ps := range []int{4096, 8192, 16384, 32768, 65536, 2048, 1024, 512} {
		n := 0
		for pg := int64(2); pg < 66 && (pg+1)*int64(ps) <= size; pg++ {
			if _, err := f.ReadAt(hdr[:], pg*int64(ps)); err != nil {
				break
			}
			if binary.LittleEndian.Uint64(hdr[:]) == uint64(pg) {
				n++
			}
		}
		if n > bestN {
			best, bestN = ps, n
		}
	}
	return best
}

// loose reads every leaf page below the high-water mark that the walk did
// not reach and that identifies as itself.
func (w *walker) loose() {
	last := min(w.highPgid, uint64(w.size/int64(w.pageSize)))
	reached := w.seen
	for pg := uint64(2); pg < last; pg++ {
		if reached[pg] {
			continue
		}
		off := int64(pg) * int64(w.pageSize)
		p := make([]byte, w.pageSize)
		if _, err := w.f.ReadAt(p, off); err != nil {
			continue
		}
		if binary.LittleEndian.Uint64(p) != pg || binary.LittleEndian.Uint16(p[8:]) != leafFlag {
			continue
		}
		if overflow := int64(binary.LittleEndian.Uint32(p[12:])); overflow > 0 {
			total := (overflow + 1) * int64(w.pageSize)
			if pg+uint64(overflow) >= last || total > 256<<20 {
				continue
			}
			p = make([]byte, total)
			if _, err := w.f.ReadAt(p, off); err != nil {
				continue
			}
		}
		w.looseLeaf(pg, "", p, true)
	}
}

// looseLeaf adds the plain pairs of leaf page p to Loose, and those of the
// inline buckets in it (once deep: an inline bucket's own inline buckets
// are not looked into).
func (w *walker) looseLeaf(pg uint64, bucket string, p []byte, inlines bool) {
	if len(p) < pageHeaderSize || binary.LittleEndian.Uint16(p[8:]) != leafFlag {
		return
	}
	count := int(binary.LittleEndian.Uint16(p[10:]))
	if pageHeaderSize+count*elemSize > len(p) {
		return
	}
	for i := 0; i < count; i++ {
		eflags, key, val, ok := leafElem(p, i)
		if !ok {
			continue
		}
		if eflags&bucketLeafFlag != 0 {
			if inlines && len(val) > 16 && binary.LittleEndian.Uint64(val) == 0 {
				w.looseLeaf(pg, string(key), val[16:], false)
			}
			continue
		}
		w.res.Loose = append(w.res.Loose, KV{Page: pg, Bucket: bucket,
			Key: append([]byte(nil), key...), Value: append([]byte(nil), val...)})
	}
}

type meta struct {
	pageSize         uint32
	root, pgid, txid uint64
}

// newestMeta is the valid meta page with the higher transaction id, as bbolt
// chooses it.
func newestMeta(f io.ReaderAt, size int64) (meta, error) {
	metas := validMetas(f, size)
	if len(metas) == 0 {
		return meta{}, ErrNotBolt
	}
	return metas[0], nil
}

// validMetas are the file's valid meta pages, newest transaction first.
func validMetas(f io.ReaderAt, size int64) []meta {
	var out []meta
	var first [4096]byte
	for _, off := range []int64{0, -1} {
		if off < 0 {
			if len(out) == 0 {
				off = 4096 // the default page size: where page 1 is when page 0 is unreadable
			} else {
				off = int64(out[0].pageSize)
			}
		}
		n, _ := f.ReadAt(first[:], off)
		if n < pageHeaderSize+64 {
			continue
		}
		b := first[pageHeaderSize:]
		if binary.LittleEndian.Uint16(first[8:]) != metaFlag || binary.LittleEndian.Uint32(b) != magic || binary.LittleEndian.Uint32(b[4:]) != version {
			continue
		}
		h := fnv.New64a()
		h.Write(b[:56])
		if h.Sum64() != binary.LittleEndian.Uint64(b[56:]) {
			continue
		}
		m := meta{pageSize: binary.LittleEndian.Uint32(b[8:]), root: binary.LittleEndian.Uint64(b[16:]),
			pgid: binary.LittleEndian.Uint64(b[40:]), txid: binary.LittleEndian.Uint64(b[48:])}
		if m.pageSize < 512 || m.pageSize > 1<<16 || m.pageSize&(m.pageSize-1) != 0 {
			continue
		}
		out = append(out, m)
	}
	if len(out) == 2 && out[1].txid > out[0].txid {
		out[0], out[1] = out[1], out[0]
	}
	return out
}

func (w *walker) damage(bucket string, pg uint64, format string, args ...any) {
	w.res.Damage = append(w.res.Damage, Damage{Bucket: bucket, Page: pg, Err: fmt.Sprintf(format, args...)})
}

// page reads page pg with its overflow pages, checking that it is what the
// tree says it is.
func (w *walker) page(bucket string, pg uint64) []byte {
	if pg < 2 || pg >= w.highPgid {
		w.damage(bucket, pg, "page id out of range (high-water mark %d)", w.highPgid)
		return nil
	}
	if w.seen[pg] {
		w.damage(bucket, pg, "page reached twice (a loop or a shared page)")
		return nil
	}
	w.seen[pg] = true
	off := int64(pg) * int64(w.pageSize)
	if off+int64(w.pageSize) > w.size {
		w.damage(bucket, pg, "page beyond the end of the file (%d bytes): truncated", w.size)
		return nil
	}
	hdr := make([]byte, w.pageSize)
	if _, err := w.f.ReadAt(hdr, off); err != nil {
		w.damage(bucket, pg, "read: %v", err)
		return nil
	}
	if id := binary.LittleEndian.Uint64(hdr); id != pg {
		w.damage(bucket, pg, "page identifies as %d", id)
		return nil
	}
	overflow := int64(binary.LittleEndian.Uint32(hdr[12:]))
	if overflow == 0 {
		return hdr
	}
	total := (overflow + 1) * int64(w.pageSize)
	if pg+uint64(overflow) >= w.highPgid || off+total > w.size || total > 256<<20 {
		w.damage(bucket, pg, "overflow of %d pages runs past the file", overflow)
		return nil
	}
	buf := make([]byte, total)
	if _, err := w.f.ReadAt(buf, off); err != nil {
		w.damage(bucket, pg, "read: %v", err)
		return nil
	}
	return buf
}

// bucket walks a bucket whose root is page root, or the inline page when
// root is 0.
func (w *walker) bucket(path string, root uint64, inline []byte, depth int) {
	if _, ok := w.res.Buckets[path]; !ok && path != "" {
		w.res.Buckets[path] = map[string][]byte{}
	}
	if root == 0 {
		w.node(path, 0, inline, depth)
		return
	}
	w.tree(path, root, depth)
}

func (w *walker) tree(path string, pg uint64, depth int) {
	if depth > maxDepth {
		w.damage(path, pg, "tree deeper than %d", maxDepth)
		return
	}
	p := w.page(path, pg)
	if p == nil {
		return
	}
	w.node(path, pg, p, depth)
}

// node reads one branch or leaf page p (id pg, 0 when inline).
func (w *walker) node(path string, pg uint64, p []byte, depth int) {
	if len(p) < pageHeaderSize {
		w.damage(path, pg, "inline page shorter than its header")
		return
	}
	flags := binary.LittleEndian.Uint16(p[8:])
	count := int(binary.LittleEndian.Uint16(p[10:]))
	if pageHeaderSize+count*elemSize > len(p) {
		w.damage(path, pg, "%d elements do not fit the page", count)
		return
	}
	switch flags {
	case branchFlag:
		for i := 0; i < count; i++ {
			e := pageHeaderSize + i*elemSize
			child := binary.LittleEndian.Uint64(p[e+8:])
			w.tree(path, child, depth+1)
		}
	case leafFlag:
		for i := 0; i < count; i++ {
			eflags, k, val, ok := leafElem(p, i)
			if !ok {
				w.damage(path, pg, "element %d lies outside the page", i)
				continue
			}
			key := string(k)
			if eflags&bucketLeafFlag != 0 {
				if len(val) < 16 {
					w.damage(path, pg, "bucket %q has a short header", key)
					continue
				}
				sub := key
				if path != "" {
					sub = path + "/" + key
				}
				w.res.Sequences[sub] = binary.LittleEndian.Uint64(val[8:])
				w.bucket(sub, binary.LittleEndian.Uint64(val), append([]byte(nil), val[16:]...), depth+1)
				continue
			}
			if path == "" {
				w.damage(path, pg, "a plain key %q at the root", key)
				continue
			}
			w.res.Buckets[path][key] = append([]byte(nil), val...)
		}
	default:
		w.damage(path, pg, "flags %#x: neither a branch nor a leaf page", flags)
	}
}

// leafElem is element i of leaf page p (its count checked by the caller):
// its flags, key and value, or !ok when they lie outside the page.
func leafElem(p []byte, i int) (flags uint32, key, val []byte, ok bool) {
	e := pageHeaderSize + i*elemSize
	pos := int(binary.LittleEndian.Uint32(p[e+4:]))
	ksize := int(binary.LittleEndian.Uint32(p[e+8:]))
	vsize := int(binary.LittleEndian.Uint32(p[e+12:]))
	start := e + pos
	// each part bounded before the sum: on a 32-bit board a sum of two
	// garbage sizes could wrap below len(p)
	if pos < 0 || ksize < 0 || vsize < 0 || pos > len(p) || ksize > len(p) || vsize > len(p) ||
		start < e || start+ksize+vsize > len(p) {
		return 0, nil, nil, false
	}
	return binary.LittleEndian.Uint32(p[e:]), p[start : start+ksize], p[start+ksize : start+ksize+vsize], true
}
