package uploader

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"pilebridge/internal/boltwalk"
	"pilebridge/internal/dbfile"
)

// SalvageResult is what the outbox's salvage hands on: its report lines,
// and the orders known to be billed (the sessions' salvage must not bring
// back an open session whose bill exists).
type SalvageResult struct {
	Lines  []string
	Billed map[string]bool
}

// SalvageOutbox is the outbox's part of `pilebridge db salvage`. It
// completes the outbox, the ledger and their indexes in got from what the
// damaged file still holds (its tree, then the copies on pages cut off
// from it) and the newest clean backup, and never brings back what the
// file shows as done. Its steps, in order, each below with its rule:
// readCopies, fillFromBackup, chooseMostAdvanced, requeueFromLedger,
// rebuildIndexes, reportLosses.
//
// Resending a bill that was in fact delivered after the backup is safe: the
// platform keeps one record per order (shared/platform/FACTS.md).
func SalvageOutbox(got, backup *dbfile.Contents, damaged map[string]bool) SalvageResult {
	q := readCopies(got)
	lines := []string{fmt.Sprintf("outbox: read from the file: %d pending, %d parked, %d ledger entries", len(q.pending), len(q.parked), len(q.ledger))}
	fileSeq, fileSeqKnown := got.Sequences[string(bucketOutbox)]
	fill := q.fillFromBackup(backup, damaged)
	fromLoose, looseOpen := q.chooseMostAdvanced(got.Loose)
	if len(got.Loose) > 0 {
		lines = append(lines, fmt.Sprintf("outbox: %d bill(s) found only on pages cut off from the tree (ledger copies), %d of them not known as delivered", fromLoose, looseOpen))
	}
	floor := fileSeq
	if backup != nil {
		floor = max(floor, backup.Sequences[string(bucketOutbox)])
	}
	seq, requeued := q.requeueFromLedger(floor)
	got.Sequences[string(bucketOutbox)] = seq
	bills := q.rebuildIndexes(got)
	lines = append(lines,
		fmt.Sprintf("outbox: %d record(s) and %d ledger entries taken from the backup, %d left out as already done, %d bill(s) queued again from the ledger", fill.records, fill.ledger, fill.dropped, requeued),
		fmt.Sprintf("outbox: now %d pending (%d bills), %d parked", len(q.pending), bills, len(q.parked)))
	lines = append(lines, q.reportLosses(fileSeq, fileSeqKnown)...)
	return SalvageResult{Lines: lines, Billed: q.billed}
}

// outboxCopy is the outbox's buckets in the salvaged contents (changed in
// place: they are what is written) and the orders known to be billed.
type outboxCopy struct {
	pending, parked, sent, ledger, closed map[string][]byte
	billed                                map[string]bool
}

// readCopies takes the outbox's buckets from what the file's tree held; an
// order is billed when the closed-order index, the ledger or a delivered
// terminal record says so.
func readCopies(got *dbfile.Contents) *outboxCopy {
	q := &outboxCopy{
		pending: got.Bucket(string(bucketOutbox)), parked: got.Bucket(string(bucketParked)),
		sent: got.Bucket(string(bucketDelivered)), ledger: got.Bucket(string(bucketLedger)),
		closed: got.Bucket(string(bucketClosed)), billed: map[string]bool{},
	}
	for k := range q.closed {
		q.billed[k] = true
	}
	for k, v := range q.ledger {
		if _, err := decodeLedger(v); err == nil {
			q.billed[k] = true
		}
	}
	for _, e := range entries(q.sent) {
		if e.Record.Terminal() {
			q.billed[e.Record.Order] = true
		}
	}
	return q
}

type backupFill struct{ records, ledger, dropped int }

// fillFromBackup takes from the backup, for the buckets the damage hit
// (damaged[""]: the whole tree), what the file lost: ledger, closed-order
// and delivered entries; and pending or parked records, unless the file
// shows them delivered, or they are progress records of an order whose
// bill is known or whose progress is queued (sent after its bill, a
// progress record would turn a billed session back to charging on the
// platform).
func (q *outboxCopy) fillFromBackup(backup *dbfile.Contents, damaged map[string]bool) backupFill {
	var n backupFill
	if backup == nil {
		return n
	}
	hit := func(b []byte) bool { return damaged[""] || damaged[string(b)] }
	if hit(bucketLedger) {
		for k, v := range backup.Bucket(string(bucketLedger)) {
			if _, ok := q.ledger[k]; !ok {
				q.ledger[k], q.billed[k] = v, true
				n.ledger++
			}
		}
	}
	if hit(bucketClosed) {
		for k, v := range backup.Bucket(string(bucketClosed)) {
			if _, ok := q.closed[k]; !ok {
				q.closed[k], q.billed[k] = v, true
			}
		}
	}
	if hit(bucketDelivered) {
		for k, v := range backup.Bucket(string(bucketDelivered)) {
			if _, ok := q.sent[k]; !ok {
				q.sent[k] = v
			}
		}
	}
	progressQueued := map[string]bool{}
	for _, e := range entries(q.pending) {
		if !e.Record.Terminal() {
			progressQueued[e.Record.Order] = true
		}
	}
	for _, b := range []struct {
		name []byte
		dst  map[string][]byte
	}{{bucketOutbox, q.pending}, {bucketParked, q.parked}} {
		if !hit(b.name) {
			continue
		}
		from := backup.Bucket(string(b.name))
		for k, e := range entries(from) {
			_, inPending := q.pending[k]
			_, inParked := q.parked[k]
			_, inSent := q.sent[k]
			switch {
			case inPending || inParked:
			case inSent || (!e.Record.Terminal() && (q.billed[e.Record.Order] || progressQueued[e.Record.Order])):
				n.dropped++
			default:
				b.dst[k] = from[k]
				n.records++
			}
		}
	}
	return n
}

// chooseMostAdvanced adds to the ledger the bills found only on leaf pages
// cut off from the tree (a truncated file keeps leaves whose branch pages
// it lost; bbolt leaves freed copies behind), for orders neither the
// ledger nor a delivered record has. A loose value counts if it decodes as
// a ledger entry under its own order, or a queue record under its own
// sequence key (looseCopy). Of several copies of an order the most
// advanced wins: delivered, then parked, then pending, and one with a
// plate before one without. A copy older than every bill the ledger still
// holds is left out: pruned long ago, not lost. It returns how many bills
// it added and how many of those are not known as delivered.
func (q *outboxCopy) chooseMostAdvanced(loose []boltwalk.KV) (added, open int) {
	delivered := map[string]bool{}
	for _, e := range entries(q.sent) {
		if e.Record.Terminal() {
			delivered[e.Record.Order] = true
		}
	}
	rank := map[string]int{LedgerPending: 1, LedgerParked: 2, LedgerDelivered: 3}
	var oldest time.Time
	for _, v := range q.ledger {
		if l, err := decodeLedger(v); err == nil && (oldest.IsZero() || l.QueuedAt.Before(oldest)) {
			oldest = l.QueuedAt
		}
	}
	best := map[string]LedgerEntry{}
	for _, kv := range loose {
		l, ok := looseCopy(kv)
		if !ok {
			continue
		}
		key := l.Record.Order
		if _, known := q.ledger[key]; known || delivered[key] {
			continue
		}
		if !l.Record.Terminal() || rank[l.Status] == 0 || l.QueuedAt.IsZero() ||
			(!oldest.IsZero() && l.QueuedAt.Before(oldest)) {
			continue
		}
		cur, seen := best[key]
		if !seen || rank[l.Status] > rank[cur.Status] ||
			(rank[l.Status] == rank[cur.Status] && cur.Record.Plate == "" && l.Record.Plate != "") {
			best[key] = l
		}
	}
	for _, k := range slices.Sorted(maps.Keys(best)) {
		data, err := encodeLedger(best[k])
		if err != nil {
			continue
		}
		q.ledger[k], q.billed[k] = data, true
		added++
		if best[k].Status != LedgerDelivered {
			open++
		}
	}
	return added, open
}

// looseCopy reads a loose value as a copy of a bill: a ledger entry under
// its own order, or a queue record (pending, parked or delivered) under its
// own sequence key, seen as the ledger entry it stands for.
func looseCopy(kv boltwalk.KV) (LedgerEntry, bool) {
	if l, err := decodeLedger(kv.Value); err == nil && l.Record.Order != "" && l.Record.Order == string(kv.Key) {
		return l, true
	}
	e, err := decodeEntry(kv.Value)
	if err != nil || e.Record.Order == "" || string(kv.Key) != string(seqKey(e.Seq)) {
		return LedgerEntry{}, false
	}
	l := LedgerEntry{Record: e.Record, Status: LedgerPending, QueuedAt: e.EnqueuedAt, Attempts: e.Attempts, Reason: e.LastError}
	switch {
	case !e.DoneAt.IsZero() && e.LastError == "":
		l.Status, l.DeliveredAt = LedgerDelivered, &e.DoneAt
	case !e.DoneAt.IsZero():
		l.Status = LedgerParked
	}
	return l, true
}

// requeueFromLedger queues again every bill the ledger holds as pending
// or parked that no queue holds (the ledger is written in the transaction
// that queues a bill, so it outlives a lost queue page); a parked one goes
// to the platform again, and is parked again if still refused. New
// sequence numbers start above floor and every key in the queue. It
// returns the last sequence number used and how many bills it queued.
func (q *outboxCopy) requeueFromLedger(floor uint64) (seq uint64, requeued int) {
	inQueue := map[string]bool{}
	for _, b := range []map[string][]byte{q.pending, q.parked} {
		for _, e := range entries(b) {
			if e.Record.Terminal() {
				inQueue[e.Record.Order], q.billed[e.Record.Order] = true, true
			}
		}
	}
	seq = floor
	for k := range q.pending {
		if n, ok := seqOf([]byte(k)); ok {
			seq = max(seq, n)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(q.ledger)) {
		l, err := decodeLedger(q.ledger[k])
		if err != nil || l.Status == LedgerDelivered || inQueue[l.Record.Order] {
			continue
		}
		seq++
		data, err := encodeEntry(Entry{Seq: seq, Record: l.Record, EnqueuedAt: l.QueuedAt})
		if err != nil {
			continue
		}
		q.pending[string(seqKey(seq))] = data
		if l.Status == LedgerParked {
			l.Status = LedgerPending
			if d, err := encodeLedger(l); err == nil {
				q.ledger[k] = d
			}
		}
		requeued++
	}
	return seq, requeued
}

// rebuildIndexes derives the progress index and the pending count from
// the queue; it returns the bills pending.
func (q *outboxCopy) rebuildIndexes(got *dbfile.Contents) (bills int) {
	idx := map[string][]byte{}
	for _, k := range slices.Sorted(maps.Keys(q.pending)) {
		e, err := decodeEntry(q.pending[k])
		if err != nil {
			continue
		}
		if e.Record.Terminal() {
			bills++
		} else {
			idx[e.Record.Order] = []byte(k)
		}
	}
	got.Buckets[string(bucketProgIdx)] = idx
	got.Bucket(string(bucketOutMeta))[string(keyCount)] = seqKey(uint64(len(q.pending)))
	return bills
}

// reportLosses names what could not be recovered: bills of orders the
// closed-order index knows as billed whose record no page and no backup
// kept, and records the file counted as queued (its own sequence, fileSeq)
// above the highest one any copy holds.
func (q *outboxCopy) reportLosses(fileSeq uint64, fileSeqKnown bool) []string {
	var lines []string
	recovered := map[string]bool{}
	for k := range q.ledger {
		recovered[k] = true
	}
	for _, b := range []map[string][]byte{q.pending, q.parked, q.sent} {
		for _, e := range entries(b) {
			if e.Record.Terminal() {
				recovered[e.Record.Order] = true
			}
		}
	}
	var gone []string
	for _, k := range slices.Sorted(maps.Keys(q.closed)) {
		if !recovered[k] {
			gone = append(gone, k)
		}
	}
	if n := len(gone); n > 0 {
		const show = 50
		more := ""
		if n > show {
			more, gone = fmt.Sprintf(" and %d more", n-show), gone[:show]
		}
		lines = append(lines, fmt.Sprintf("not recovered: %d bill(s) of orders known to be billed whose record no page kept: %s%s: compare `pilebridge sessions` with the platform",
			n, strings.Join(gone, ", "), more))
	}
	var known uint64
	for _, b := range []map[string][]byte{q.pending, q.parked, q.sent} {
		for k := range b {
			if n, ok := seqOf([]byte(k)); ok {
				known = max(known, n)
			}
		}
	}
	switch {
	case !fileSeqKnown:
		lines = append(lines, "not recovered: the file's own count of queued records is unreadable; any bill queued after the backup whose ledger entry was lost is gone: compare `pilebridge sessions` with the platform")
	case fileSeq > known:
		lines = append(lines, fmt.Sprintf("not recovered: records %d to %d were queued in the damaged pages and are in no backup; any bills among them are lost: compare `pilebridge sessions` with the platform", known+1, fileSeq))
	default:
		lines = append(lines, "outbox: no record is missing after the highest one read (the file's own count agrees)")
	}
	return lines
}

// entries decodes a queue bucket's records, skipping what does not decode.
func entries(b map[string][]byte) map[string]Entry {
	out := make(map[string]Entry, len(b))
	for k, v := range b {
		if e, err := decodeEntry(v); err == nil {
			out[k] = e
		}
	}
	return out
}
