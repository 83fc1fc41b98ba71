package session

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

var (
	bucketSessions = []byte("sessions")
	bucketMeta     = []byte("meta")
	keyOrderSeq    = []byte("order_seq")
	// order counter ranges a salvage skipped: (from, to] pairs, big-endian
	keyOrderSkipped = []byte("order_seq_skipped")
)

// BoltOptions are the bbolt settings the store's figures are measured with
// (docs/bench.md). The daemon opens its database with them.
//
// The freelist is not stored: once an outage's records have drained it
// lists every page they freed, and bbolt rewrites all of it on every commit
// (296 KB per commit after 100 000 records, against 8 KB without). The cost
// is at open, where bbolt rebuilds it by walking the file: 68 ms warm, 4.3 s
// cold for 100 000 queued records (151 MB), a few ms for a usual file.
func BoltOptions() *bbolt.Options {
	return &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}
}

// Sink takes a port's events inside the transaction that stores its
// session, so a closed session and its bill are committed together or not
// at all. The uploader's outbox is one.
type Sink interface {
	EnqueueTx(tx *bbolt.Tx, port string, e Event) error
	Notify()
}

// Store keeps open sessions in bbolt.
type Store struct {
	db     *bbolt.DB
	outbox Sink
	loc    *time.Location
	node   string
	codec  codec

	mu       sync.Mutex // guards what follows: the store's health and the order counter
	inflight map[uint64]time.Time
	nextID   uint64
	lastOK   time.Time
	lastErr  error
	failing  map[string]time.Time // port -> first failed commit not yet followed by a good one
	issued   uint64               // the order counter: the last number handed out
}

// Health is how the store's writes are going, for /healthz and the
// watchdog.
type Health struct {
	LastOK         time.Time // the last commit that reached the disk
	LastErr        error     // the last commit's error, nil once one succeeds again
	OldestInflight time.Time // start of the oldest commit still waiting for its fsync; zero when none
	// Unsaved counts the ports whose latest session state is held in memory
	// only, because their commits fail; UnsavedSince is the oldest such
	// failure. A restart inside that window loses what was not committed.
	Unsaved      int
	UnsavedSince time.Time
}

// Health reports the last commit's outcome, the oldest commit in flight and
// the ports whose state is only in memory.
func (s *Store) Health() Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := Health{LastOK: s.lastOK, LastErr: s.lastErr, Unsaved: len(s.failing)}
	for _, t := range s.inflight {
		if h.OldestInflight.IsZero() || t.Before(h.OldestInflight) {
			h.OldestInflight = t
		}
	}
	for _, t := range s.failing {
		if h.UnsavedSince.IsZero() || t.Before(h.UnsavedSince) {
			h.UnsavedSince = t
		}
	}
	return h
}

func (s *Store) begin() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	s.inflight[s.nextID] = time.Now()
	return s.nextID
}

// end records commit id, of ports' writes, as done with err; with no ports
// it only takes the commit off the in-flight list (CommitAll then commits
// its writes again, each on its own).
func (s *Store) end(id uint64, err error, ports ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inflight, id)
	if len(ports) == 0 {
		return
	}
	s.lastErr = err
	now := time.Now()
	for _, port := range ports {
		if err == nil {
			s.lastOK = now
			delete(s.failing, port)
		} else if _, ok := s.failing[port]; !ok {
			s.failing[port] = now
		}
	}
}

// NewStore creates the buckets. node is put in order numbers (board id).
func NewStore(db *bbolt.DB, outbox Sink, loc *time.Location, node string) (*Store, error) {
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketSessions, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("session store: %w", err)
	}
	c, err := newCodec()
	if err != nil {
		return nil, fmt.Errorf("session store: %w", err)
	}
	var seq uint64
	err = db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyOrderSeq); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("session store: %w", err)
	}
	return &Store{db: db, outbox: outbox, loc: loc, node: node, codec: c, inflight: map[uint64]time.Time{},
		failing: map[string]time.Time{}, issued: seq}, nil
}

// Commit stores the port's session (nil: it closed) and enqueues its events,
// in one fsynced transaction, and returns only once that is on disk.
// Commits from ports polled at about the same moment share one transaction
// (bbolt's Batch): one fsync for many ports instead of one each. Batch may
// run the function again if a shared transaction fails, so it only writes
// to the transaction.
func (s *Store) Commit(port string, sess *Session, recs []Event) (err error) {
	id := s.begin()
	defer func() { s.end(id, err, port) }()
	seq := s.seq()
	var data []byte
	if sess != nil {
		if data, err = s.codec.encode(sess); err != nil {
			return fmt.Errorf("store session of port %s: %w", port, err)
		}
	}
	err = s.db.Batch(func(tx *bbolt.Tx) error {
		if err := s.put(tx, port, data, recs); err != nil {
			return err
		}
		return saveOrderSeq(tx, seq)
	})
	if err != nil {
		return fmt.Errorf("store session of port %s: %w", port, err)
	}
	if len(recs) > 0 {
		s.outbox.Notify()
	}
	return nil
}

// Write is one port's share of CommitAll: its session (nil: it closed) and
// the events to enqueue with it.
type Write struct {
	Port string
	Sess *Session
	Recs []Event
}

// CommitAll commits the writes of one round of a line's polls in one
// fsynced transaction, as Commit does for one, and puts each write's
// outcome in errs (len(ws) long). If that transaction fails, each write is
// committed on its own, so a port whose write the store refuses keeps no
// other port's from the disk.
func (s *Store) CommitAll(ws []Write, errs []error) {
	if len(ws) == 1 {
		errs[0] = s.Commit(ws[0].Port, ws[0].Sess, ws[0].Recs)
		return
	}
	if len(ws) == 0 {
		return
	}
	id := s.begin()
	seq := s.seq()
	data := make([][]byte, len(ws))
	var err error
	for i, w := range ws {
		if w.Sess != nil {
			if data[i], err = s.codec.encode(w.Sess); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = s.db.Batch(func(tx *bbolt.Tx) error {
			for i, w := range ws {
				if err := s.put(tx, w.Port, data[i], w.Recs); err != nil {
					return err
				}
			}
			return saveOrderSeq(tx, seq)
		})
	}
	if err != nil { // find out whose: each on its own
		s.end(id, nil)
		for i, w := range ws {
			errs[i] = s.Commit(w.Port, w.Sess, w.Recs)
		}
		return
	}
	notify := false
	ports := make([]string, len(ws))
	for i, w := range ws {
		errs[i], ports[i] = nil, w.Port
		notify = notify || len(w.Recs) > 0
	}
	s.end(id, nil, ports...)
	if notify {
		s.outbox.Notify()
	}
}

// put writes one port's session (data nil: it closed) and enqueues its
// events, inside tx.
func (s *Store) put(tx *bbolt.Tx, port string, data []byte, recs []Event) error {
	b := tx.Bucket(bucketSessions)
	if data == nil {
		if err := b.Delete([]byte(port)); err != nil {
			return err
		}
	} else if err := b.Put([]byte(port), data); err != nil {
		return err
	}
	for _, r := range recs {
		if err := s.outbox.EnqueueTx(tx, port, r); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) seq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

// Open returns the sessions stored as open, by port.
func (s *Store) Open() (map[string]*Session, error) {
	out := map[string]*Session{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			sess, err := s.codec.decode(v)
			if err != nil {
				return fmt.Errorf("stored session of port %s is unreadable: %w", k, err)
			}
			out[string(k)] = sess
			return nil
		})
	})
	return out, err
}

// NextOrder issues an order number: local start time to the second, the
// board's node id, and a counter. At most 14+len(node)+6 characters, and
// sortable by start time.
//
// It needs no write: a session opens at the reading that proves it even when
// the store refuses writes (docs/RELIABILITY.md, storage failures). The
// counter is saved in the transaction of every commit, so it is on disk
// before any record carrying a number it issued is (records reach the
// outbox only through Commit). After a restart it may hand out again a
// number that was issued but never committed: such a number never left the
// board, so no order the platform has seen is ever repeated.
func (s *Store) NextOrder(start time.Time) string {
	s.mu.Lock()
	s.issued++
	n := s.issued
	s.mu.Unlock()
	return fmt.Sprintf("%s%s%06d", start.In(s.loc).Format("20060102150405"), s.node, n%1_000_000)
}

// saveOrderSeq raises the stored order counter to n; a commit of another
// port that issued later may already have raised it further.
func saveOrderSeq(tx *bbolt.Tx, n uint64) error {
	b := tx.Bucket(bucketMeta)
	if v := b.Get(keyOrderSeq); len(v) == 8 && binary.BigEndian.Uint64(v) >= n {
		return nil
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], n)
	return b.Put(keyOrderSeq, buf[:])
}
