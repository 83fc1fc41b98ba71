package uploader

import (
	"encoding/binary"
	"encoding/json"
)

// The outbox's layout in the daemon's bbolt file, read and written by the
// live outbox and by salvage alike: bucket names, key encodings, values.
var (
	bucketOutbox    = []byte("outbox")            // seq -> Entry, pending delivery
	bucketProgIdx   = []byte("outbox_progress")   // order -> seq of its pending progress record
	bucketParked    = []byte("outbox_parked")     // seq -> Entry, rejected by the platform
	bucketDelivered = []byte("outbox_sent")       // seq -> Entry, the most recent deliveries
	bucketOutMeta   = []byte("outbox_meta")       // keyCount -> the pending count
	bucketClosed    = []byte("outbox_closed")     // order -> seq and time of its terminal record
	bucketPlateWait = []byte("outbox_plate_wait") // port -> seq of its bill waiting for a plate
	bucketLedger    = []byte("ledger")            // order -> LedgerEntry
	keyCount        = []byte("count")
)

// seqKey is a queue key: the record's sequence number, big-endian, so the
// bucket's order is the queue's.
func seqKey(n uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], n)
	return k[:]
}

// seqOf reads a queue key; ok is false for a key of another length.
func seqOf(k []byte) (uint64, bool) {
	if len(k) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(k), true
}

// Entries and ledger entries are stored as JSON.

func encodeEntry(e Entry) ([]byte, error) { return json.Marshal(e) }

func decodeEntry(v []byte) (Entry, error) {
	var e Entry
	err := json.Unmarshal(v, &e)
	return e, err
}

func encodeLedger(l LedgerEntry) ([]byte, error) { return json.Marshal(l) }

func decodeLedger(v []byte) (LedgerEntry, error) {
	var l LedgerEntry
	err := json.Unmarshal(v, &l)
	return l, err
}
