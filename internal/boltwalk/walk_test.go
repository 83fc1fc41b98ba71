package boltwalk

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
)

// makeDB writes a file with a large bucket (branch pages), values that
// overflow a page, a small inline bucket and a nested one; it returns what
// bbolt itself reads back, the truth the walk is held to.
func makeDB(t *testing.T) (string, map[string]map[string][]byte) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		big, _ := tx.CreateBucket([]byte("outbox"))
		for i := 0; i < 3000; i++ {
			v := make([]byte, 20+rng.IntN(300))
			for j := range v {
				v[j] = byte('a' + rng.IntN(26))
			}
			if err := big.Put([]byte(fmt.Sprintf("k%06d", i)), v); err != nil {
				return err
			}
		}
		_ = big.SetSequence(3000)
		huge, _ := tx.CreateBucket([]byte("huge"))
		_ = huge.Put([]byte("x"), bytes.Repeat([]byte("z"), 20000))
		small, _ := tx.CreateBucket([]byte("meta"))
		_ = small.Put([]byte("order_seq"), []byte{0, 0, 0, 0, 0, 0, 0, 9})
		nest, _ := small.CreateBucket([]byte("inner"))
		return nest.Put([]byte("a"), []byte("b"))
	}))
	// churn so that freed pages hold stale copies the walk must not return
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("outbox"))
		for i := 0; i < 3000; i += 3 {
			if err := b.Delete([]byte(fmt.Sprintf("k%06d", i))); err != nil {
				return err
			}
		}
		return nil
	}))
	want := map[string]map[string][]byte{}
	require.NoError(t, db.View(func(tx *bbolt.Tx) error {
		var walk func(path string, b *bbolt.Bucket) error
		walk = func(path string, b *bbolt.Bucket) error {
			want[path] = map[string][]byte{}
			return b.ForEach(func(k, v []byte) error {
				if v == nil {
					return walk(path+"/"+string(k), b.Bucket(k))
				}
				want[path][string(k)] = append([]byte(nil), v...)
				return nil
			})
		}
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error { return walk(string(name), b) })
	}))
	require.NoError(t, db.Close())
	return path, want
}

func TestWalkReadsWhatBboltReads(t *testing.T) {
	path, want := makeDB(t)
	res, err := Walk(path)
	require.NoError(t, err)
	assert.NoError(t, res.Err())
	assert.Equal(t, want, res.Buckets)
	assert.EqualValues(t, 3000, res.Sequences["outbox"])
	assert.Len(t, res.Buckets["outbox"], 2000, "deleted keys in freed pages are not read")
}

// Truncated, holed, zeroed or emptied: the walk reports damage or refuses
// the file, and never panics; what it does return is true data.
func TestWalkOnDamagedFiles(t *testing.T) {
	path, want := makeDB(t)
	orig, err := os.ReadFile(path)
	require.NoError(t, err)
	damaged := map[string][]byte{
		"truncated to half": orig[:len(orig)/2],
		"empty":             {},
	}
	holed := append([]byte(nil), orig...)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := len(holed) / 2; i < len(holed)/2+4096; i++ {
		holed[i] = byte(rng.Uint32())
	}
	damaged["4 KiB of random bytes in the middle"] = holed
	zeroed := append([]byte(nil), orig...)
	clear(zeroed[8192 : 8192+8192])
	damaged["two pages zeroed"] = zeroed
	for name, data := range damaged {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "db")
			require.NoError(t, os.WriteFile(p, data, 0o600))
			res, err := Walk(p)
			if name == "empty" {
				require.ErrorIs(t, err, ErrNotBolt)
				return
			}
			require.NoError(t, err)
			require.Error(t, res.Err(), "the damage is seen")
			t.Log(res.Err())
			for b, kv := range res.Buckets {
				for k, v := range kv {
					assert.Equal(t, want[b][k], v, "bucket %s key %s is true data", b, k)
				}
			}
		})
	}
}

// Random corruption anywhere: never a panic.
func FuzzWalk(f *testing.F) {
	f.Add(uint64(1), uint16(100), uint16(50))
	f.Fuzz(func(t *testing.T, seed uint64, at, n uint16) {
		data := fuzzBase(t)
		rng := rand.New(rand.NewPCG(seed, 0))
		start := int(at) * 4 % len(data)
		for i := start; i < len(data) && i < start+int(n); i++ {
			data[i] = byte(rng.Uint32())
		}
		_, _ = WalkReader(bytes.NewReader(data), int64(len(data)))
	})
}

var fuzzData []byte

func fuzzBase(t *testing.T) []byte {
	if fuzzData == nil {
		path, _ := makeDB(t)
		var err error
		fuzzData, err = os.ReadFile(path)
		require.NoError(t, err)
	}
	return append([]byte(nil), fuzzData...)
}

// A file cut short above its leaves (a truncation that took the branch
// pages): the walk reaches nothing of the bucket, and Loose holds every key
// of every leaf page still in the file. Truth: bbolt's own page types
// before the cut, and the keys in those pages' bytes.
func TestLooseLeavesOfACutTree(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType})
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte("ledger"))
		if err != nil {
			return err
		}
		for i := 0; i < 3000; i++ {
			if err := b.Put([]byte(fmt.Sprintf("k%06d", i)), bytes.Repeat([]byte("v"), 100)); err != nil {
				return err
			}
		}
		return nil
	}))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var root uint64
	want := map[string]bool{}
	keyRe := regexp.MustCompile(`k\d{6}`)
	require.NoError(t, db.View(func(tx *bbolt.Tx) error {
		root = uint64(tx.Bucket([]byte("ledger")).Root())
		for id := 2; ; id++ {
			info, err := tx.Page(id)
			if err != nil || info == nil {
				return err
			}
			if info.Type == "leaf" && uint64(id) < root {
				for _, k := range keyRe.FindAll(data[id*4096:(id+1)*4096], -1) {
					want[string(k)] = true
				}
			}
		}
	}))
	require.NoError(t, db.Close())
	require.Greater(t, len(want), 2500, "the root comes after most leaves (bbolt spills children first)")
	require.NoError(t, os.Truncate(path, int64(root)*4096))

	res, err := Walk(path)
	require.NoError(t, err)
	require.Error(t, res.Err())
	assert.Empty(t, res.Buckets["ledger"], "nothing of the bucket is reachable")
	got := map[string]bool{}
	for _, kv := range res.Loose {
		if keyRe.Match(kv.Key) {
			assert.False(t, got[string(kv.Key)], "%s read twice", kv.Key)
			got[string(kv.Key)] = true
			assert.Equal(t, bytes.Repeat([]byte("v"), 100), kv.Value)
		}
	}
	assert.Equal(t, want, got)

	// a file that walks clean has no loose keys to offer
	path2, _ := makeDB(t)
	res, err = Walk(path2)
	require.NoError(t, err)
	assert.Empty(t, res.Loose)
}

// Scavenge, with the newest root page destroyed: the previous
// transaction's tree still holds the value as it was, and it comes back
// with its bucket named.
func TestScavengeReadsThePreviousTransactionsTree(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType})
	require.NoError(t, err)
	for _, v := range []string{"first", "second"} {
		require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("outbox"))
			if err != nil {
				return err
			}
			return b.Put([]byte("bill"), []byte(v))
		}))
	}
	require.NoError(t, db.Close())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	metas := validMetas(bytes.NewReader(data), int64(len(data)))
	require.Len(t, metas, 2)
	ps := int(metas[0].pageSize)
	copy(data[int(metas[0].root)*ps:int(metas[0].root+1)*ps], make([]byte, ps))

	res, err := ScavengeReader(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	require.NotEmpty(t, res.Damage)
	var fromTree []string
	for _, kv := range res.Loose {
		if kv.Bucket == "outbox" && string(kv.Key) == "bill" {
			fromTree = append(fromTree, string(kv.Value))
		}
	}
	assert.Contains(t, fromTree, "first", "the previous transaction's copy, bucket named")
}

// Scavenge with both meta pages gone: the page size is taken from the
// pages themselves and every leaf is read.
func TestScavengeWithoutMetaPages(t *testing.T) {
	for _, ps := range []int{4096, 16384} {
		path := filepath.Join(t.TempDir(), "db")
		db, err := bbolt.Open(path, 0o600, &bbolt.Options{PageSize: ps, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType})
		require.NoError(t, err)
		require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucket([]byte("outbox"))
			if err != nil {
				return err
			}
			for i := 0; i < 200; i++ {
				if err := b.Put([]byte(fmt.Sprintf("bill%03d", i)), bytes.Repeat([]byte("w"), 100)); err != nil {
					return err
				}
			}
			return nil
		}))
		require.NoError(t, db.Close())
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		copy(data, make([]byte, 2*ps))
		_, err = WalkReader(bytes.NewReader(data), int64(len(data)))
		require.ErrorIs(t, err, ErrNotBolt, "Walk, for the daemon, still refuses it")
		res, err := ScavengeReader(bytes.NewReader(data), int64(len(data)))
		require.NoError(t, err)
		assert.Equal(t, ps, res.PageSize)
		require.NotEmpty(t, res.Damage)
		keys := map[string]bool{}
		for _, kv := range res.Loose {
			keys[string(kv.Key)] = true
		}
		assert.Len(t, keys, 200, "page size %d: every bill from the leaves", ps)
	}
}
