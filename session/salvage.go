package session

import (
	"encoding/binary"
	"fmt"

	"pilebridge/internal/dbfile"
)

// orderSeqMargin is added to the order counter after a salvage: numbers
// issued after the backup may be lost with the damaged pages, and an order
// number the platform has seen must never be issued again.
const orderSeqMargin = 100_000

// SalvageRule is the session store's part of `pilebridge db salvage`. Run
// it after the outbox's rule, which fills got.Closed:
//   - an open session the file lost comes from the backup unless its order
//     is known to be billed (then it closed after the backup was taken);
//     on the first reading after the start, recovery decides what became
//     of it, as after any restart;
//   - the order counter is the higher of the two, plus a margin.
func SalvageRule(got, backup *dbfile.Contents, damaged map[string]bool) []string {
	sessions := got.Bucket(string(bucketSessions))
	read := len(sessions)
	restored, skipped := 0, 0
	c, err := newCodec()
	if err != nil {
		return []string{fmt.Sprintf("sessions: %v", err)}
	}
	if backup != nil && (damaged[""] || damaged[string(bucketSessions)]) {
		for port, v := range backup.Bucket(string(bucketSessions)) {
			if _, ok := sessions[port]; ok {
				continue
			}
			s, err := c.decode(v)
			if err != nil || got.Closed[s.Order] {
				skipped++
				continue
			}
			sessions[port] = v
			restored++
		}
	}
	var seq uint64
	for _, m := range []*dbfile.Contents{got, backup} {
		if m == nil {
			continue
		}
		if v := m.Bucket(string(bucketMeta))[string(keyOrderSeq)]; len(v) == 8 {
			seq = max(seq, binary.BigEndian.Uint64(v))
		}
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], seq+orderSeqMargin)
	got.Bucket(string(bucketMeta))[string(keyOrderSeq)] = buf[:]
	return []string{fmt.Sprintf("sessions: %d open read from the file, %d taken from the backup, %d left out as already billed", read, restored, skipped)}
}
