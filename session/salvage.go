package session

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"pilebridge/internal/dbfile"
)

// orderSeqMargin is added to the order counter after a salvage: numbers
// issued after the backup may be lost with the damaged pages, and an order
// number the platform has seen must never be issued again.
const orderSeqMargin = 100_000

// SalvageSessions is the session store's part of `pilebridge db salvage`,
// run after the outbox's, which names the orders known to be billed:
//   - an open session the file lost comes from the backup unless its order
//     is billed (then it closed after the backup was taken); on the first
//     reading after the start, recovery decides what became of it, as
//     after any restart;
//   - the order counter is the higher of the two, plus a margin (the
//     skipped numbers are remembered, so a later salvage does not take
//     them for lost);
//   - every order number issued since the oldest one still known that no
//     bill, queue or open session holds is named: a bill lost with the
//     damaged pages, or a session the bridge never stored (it stopped
//     first, and nothing of it was billed).
func SalvageSessions(got, backup *dbfile.Contents, damaged map[string]bool, billed map[string]bool) []string {
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
			if err != nil || billed[s.Order] {
				skipped++
				continue
			}
			sessions[port] = v
			restored++
		}
	}
	var seq uint64
	_, fileSeqKnown := got.Bucket(string(bucketMeta))[string(keyOrderSeq)]
	for _, m := range []*dbfile.Contents{got, backup} {
		if m == nil {
			continue
		}
		if v := m.Bucket(string(bucketMeta))[string(keyOrderSeq)]; len(v) == 8 {
			seq = max(seq, binary.BigEndian.Uint64(v))
		}
	}
	// the counter only grows: any copy of it on a page cut off from the
	// tree, however old, is a floor for the number last issued
	for _, kv := range got.Loose {
		if kv.Bucket == string(bucketMeta) && string(kv.Key) == string(keyOrderSeq) && len(kv.Value) == 8 {
			seq = max(seq, binary.BigEndian.Uint64(kv.Value))
			fileSeqKnown = true
		}
	}
	var skippedRanges []byte // (from, to] pairs, big-endian
	for _, m := range []*dbfile.Contents{got, backup} {
		if m == nil {
			continue
		}
		if v := m.Bucket(string(bucketMeta))[string(keyOrderSkipped)]; len(v)%16 == 0 && len(v) > len(skippedRanges) {
			skippedRanges = v // the list only grows: the longer one has the other's
		}
	}
	known := map[uint64]bool{}
	for order := range billed {
		if n, ok := orderCounter(order); ok {
			known[n] = true
		}
	}
	for _, v := range sessions {
		if s, err := c.decode(v); err == nil {
			if n, ok := orderCounter(s.Order); ok {
				known[n] = true
			}
		}
	}
	lines := []string{fmt.Sprintf("sessions: %d open read from the file, %d taken from the backup, %d left out as already billed", read, restored, skipped)}
	lines = append(lines, unaccounted(known, seq, skippedRanges))
	if !fileSeqKnown {
		lines = append(lines, "not recovered: the file's own order counter is unreadable: order numbers issued after the highest one known cannot be checked; bills among them that no page kept are lost: compare `pilebridge sessions` with the platform")
	}

	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], seq+orderSeqMargin)
	got.Bucket(string(bucketMeta))[string(keyOrderSeq)] = buf[:]
	var r [16]byte
	binary.BigEndian.PutUint64(r[:8], seq)
	binary.BigEndian.PutUint64(r[8:], seq+orderSeqMargin)
	got.Bucket(string(bucketMeta))[string(keyOrderSkipped)] = append(append([]byte(nil), skippedRanges...), r[:]...)
	return lines
}

// orderCounter is the counter in an order number (its last six digits,
// NextOrder's format).
func orderCounter(order string) (uint64, bool) {
	if len(order) < 6 {
		return 0, false
	}
	n, err := strconv.ParseUint(order[len(order)-6:], 10, 64)
	return n, err == nil
}

// unaccounted names the counters from the lowest known one up to seq that
// are neither known nor in a skipped range: the report's line.
func unaccounted(known map[uint64]bool, seq uint64, skipped []byte) string {
	const show = 50
	if len(known) == 0 {
		return "orders: none is known any more; every bill since the last backup may be lost: compare `pilebridge sessions` with the platform"
	}
	top := seq % 1_000_000 // the counter in an order number wraps at a million
	counters := slices.Collect(maps.Keys(known))
	low, high := slices.Min(counters), slices.Max(counters)
	if high > top && high-top < 1_000 { // the stored counter lags what was issued
		seq, top = seq+high-top, high
	}
	if low > top {
		return "orders: the counter has wrapped since the oldest known order; gaps not checked: compare `pilebridge sessions` with the platform"
	}
	inSkipped := func(n uint64) bool {
		for i := 0; i+16 <= len(skipped); i += 16 {
			from, to := binary.BigEndian.Uint64(skipped[i:]), binary.BigEndian.Uint64(skipped[i+8:])
			if n+(seq-top) > from && n+(seq-top) <= to {
				return true
			}
		}
		return false
	}
	var missing []string
	count := 0
	for n := low; n <= top; n++ {
		if known[n] || inSkipped(n) {
			continue
		}
		count++
		if len(missing) < show {
			missing = append(missing, fmt.Sprintf("%06d", n))
		}
	}
	if count == 0 {
		return fmt.Sprintf("orders: every order number issued since the oldest one known (ending %06d) is accounted for", low)
	}
	more := ""
	if count > show {
		more = fmt.Sprintf(" and %d more", count-show)
	}
	return fmt.Sprintf("not recovered: %d order number(s) issued with nothing of them left, ending %s%s: each a bill lost with the damaged pages, or a session the bridge never stored (it stopped first; nothing of it was billed): compare `pilebridge sessions` with the platform",
		count, strings.Join(missing, ", "), more)
}
