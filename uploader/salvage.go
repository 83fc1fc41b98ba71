package uploader

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"pilebridge/internal/boltwalk"
	"pilebridge/internal/dbfile"
)

// SalvageRule is the outbox's part of `pilebridge db salvage`: it completes
// the outbox, ledger and their indexes from what a damaged file still holds,
// the ledger (every bill is written there in the transaction that queues
// it) and the newest clean backup, and it never brings back what the file
// shows as done:
//   - a bill the ledger has as pending or parked but no queue holds is
//     queued again from the ledger's copy;
//   - from the backup, a pending or parked record the file lost comes back
//     unless its sequence number is among the delivered, or it is a progress
//     record of an order whose bill is known (sent after its bill, it would
//     turn a billed session back to charging on the platform);
//   - the ledger, delivered and closed-order entries the file lost come
//     from the backup;
//   - a bill whose ledger entry survives only on a leaf page cut off from
//     the tree (a truncated file keeps leaves whose branch pages it lost)
//     is taken from there when neither the file's tree nor the backup has
//     its order (see looseBills);
//   - the pending count and the progress index are rebuilt from the queue.
//
// Resending a bill that was in fact delivered after the backup is safe: the
// platform keeps one record per order (shared/platform/FACTS.md).
func SalvageRule(got, backup *dbfile.Contents, damaged map[string]bool) []string {
	all := damaged[""]
	hit := func(b []byte) bool { return all || damaged[string(b)] }
	var lines []string
	pending, parked, sent := got.Bucket(string(bucketOutbox)), got.Bucket(string(bucketParked)), got.Bucket(string(bucketDelivered))
	ledger, closed := got.Bucket(string(bucketLedger)), got.Bucket(string(bucketClosed))
	entries := func(b map[string][]byte) map[string]Entry {
		out := map[string]Entry{}
		for k, v := range b {
			var e Entry
			if json.Unmarshal(v, &e) == nil {
				out[k] = e
			}
		}
		return out
	}
	read := fmt.Sprintf("read from the file: %d pending, %d parked, %d ledger entries", len(pending), len(parked), len(ledger))
	lines = append(lines, "outbox: "+read)
	// orders whose bill is known, from every source the file kept
	for k := range closed {
		got.Closed[k] = true
	}
	for k, v := range ledger {
		var l LedgerEntry
		if json.Unmarshal(v, &l) == nil {
			got.Closed[k] = true
		}
	}
	for _, e := range entries(sent) {
		if e.Record.Terminal() {
			got.Closed[e.Record.Order] = true
		}
	}
	fileSeq, fileSeqKnown := got.Sequences[string(bucketOutbox)]
	fromBackup, ledgerFromBackup, dropped := 0, 0, 0
	if backup != nil {
		bl := backup.Bucket(string(bucketLedger))
		if hit(bucketLedger) {
			for k, v := range bl {
				if _, ok := ledger[k]; !ok {
					ledger[k] = v
					got.Closed[k] = true
					ledgerFromBackup++
				}
			}
		}
		if hit(bucketClosed) {
			for k, v := range backup.Bucket(string(bucketClosed)) {
				if _, ok := closed[k]; !ok {
					closed[k], got.Closed[k] = v, true
				}
			}
		}
		if hit(bucketDelivered) {
			for k, v := range backup.Bucket(string(bucketDelivered)) {
				if _, ok := sent[k]; !ok {
					sent[k] = v
				}
			}
		}
		queued := map[string]bool{} // orders with a progress record queued
		for _, e := range entries(pending) {
			if !e.Record.Terminal() {
				queued[e.Record.Order] = true
			}
		}
		for _, pair := range []struct {
			name []byte
			dst  map[string][]byte
		}{{bucketOutbox, pending}, {bucketParked, parked}} {
			if !hit(pair.name) {
				continue
			}
			for k, e := range entries(backup.Bucket(string(pair.name))) {
				_, inPending := pending[k]
				_, inParked := parked[k]
				_, inSent := sent[k]
				switch {
				case inPending || inParked:
				case inSent || (!e.Record.Terminal() && (got.Closed[e.Record.Order] || queued[e.Record.Order])):
					dropped++
				default:
					pair.dst[k] = backup.Bucket(string(pair.name))[k]
					fromBackup++
				}
			}
		}
	}
	delivered := map[string]bool{}
	for _, e := range entries(sent) {
		if e.Record.Terminal() {
			delivered[e.Record.Order] = true
		}
	}
	fromLoose, looseOpen := looseBills(got.Loose, ledger, delivered)
	for _, k := range fromLoose {
		got.Closed[k] = true
	}
	if len(got.Loose) > 0 {
		lines = append(lines, fmt.Sprintf("outbox: %d bill(s) found only on pages cut off from the tree (ledger copies), %d of them not known as delivered", len(fromLoose), looseOpen))
	}
	// a bill the ledger holds as undelivered must be in a queue; a bill in
	// a queue closes its order for the sessions' rule too
	inQueue := map[string]bool{}
	for _, b := range []map[string][]byte{pending, parked} {
		for _, e := range entries(b) {
			if e.Record.Terminal() {
				inQueue[e.Record.Order], got.Closed[e.Record.Order] = true, true
			}
		}
	}
	seq := got.Sequences[string(bucketOutbox)]
	if backup != nil {
		seq = max(seq, backup.Sequences[string(bucketOutbox)])
	}
	for _, k := range sortedKeys(pending) {
		seq = max(seq, binary.BigEndian.Uint64([]byte(k)))
	}
	requeued := 0
	for _, k := range sortedKeys(ledger) {
		var l LedgerEntry
		if json.Unmarshal(ledger[k], &l) != nil || l.Status == LedgerDelivered || inQueue[l.Record.Order] {
			continue
		}
		seq++
		data, err := json.Marshal(Entry{Seq: seq, Record: l.Record, EnqueuedAt: l.QueuedAt})
		if err != nil {
			continue
		}
		pending[string(seqKey(seq))] = data
		if l.Status == LedgerParked {
			l.Status = LedgerPending // it goes to the platform again; parked again if still refused
			if d, err := json.Marshal(l); err == nil {
				ledger[k] = d
			}
		}
		requeued++
	}
	got.Sequences[string(bucketOutbox)] = seq
	// derived data, rebuilt from the queue
	idx := map[string][]byte{}
	bills := 0
	for _, k := range sortedKeys(pending) {
		var e Entry
		if json.Unmarshal(pending[k], &e) != nil {
			continue
		}
		if e.Record.Terminal() {
			bills++
		} else {
			idx[e.Record.Order] = []byte(k)
		}
	}
	got.Buckets[string(bucketProgIdx)] = idx
	got.Bucket(string(bucketOutMeta))[string(keyCount)] = seqKey(uint64(len(pending)))
	lines = append(lines,
		fmt.Sprintf("outbox: %d record(s) and %d ledger entries taken from the backup, %d left out as already done, %d bill(s) queued again from the ledger", fromBackup, ledgerFromBackup, dropped, requeued),
		fmt.Sprintf("outbox: now %d pending (%d bills), %d parked", len(pending), bills, len(parked)))
	// what could not be recovered: bills of orders known to be billed (the
	// closed-order index says so) whose record no page and no backup kept
	recovered := map[string]bool{}
	for k := range ledger {
		recovered[k] = true
	}
	for _, b := range []map[string][]byte{pending, parked, sent} {
		for _, e := range entries(b) {
			if e.Record.Terminal() {
				recovered[e.Record.Order] = true
			}
		}
	}
	var gone []string
	for _, k := range sortedKeys(closed) {
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
	// records the file counted as queued that no readable page and no
	// backup holds
	var known uint64
	for _, b := range []map[string][]byte{pending, parked, sent} {
		for k := range b {
			if len(k) == 8 {
				known = max(known, binary.BigEndian.Uint64([]byte(k)))
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

func sortedKeys(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// looseBills adds to ledger the bills found on leaf pages cut off from the
// tree, for orders neither ledger nor delivered has; it returns their
// orders and how many are not known as delivered (those are queued
// again). A loose value counts if it decodes as a ledger entry of its own
// key's bill, or as a queue record of its own sequence key (looseCopy).
// Of several copies of an order (bbolt leaves freed copies behind), the most
// advanced wins: delivered, then parked, then pending, and one with a plate
// before one without; resending a bill whose delivered copy was lost is
// safe, the platform keeping one record per order. A copy older than every
// bill the ledger still holds is left out: pruned long ago, not lost.
// looseCopy reads a loose value as a copy of a bill: a ledger entry under
// its own order, or a queue record (pending, parked or delivered) under its
// own sequence key, seen as the ledger entry it stands for.
func looseCopy(kv boltwalk.KV) (LedgerEntry, bool) {
	var l LedgerEntry
	if json.Unmarshal(kv.Value, &l) == nil && l.Record.Order != "" && l.Record.Order == string(kv.Key) {
		return l, true
	}
	var e Entry
	if json.Unmarshal(kv.Value, &e) != nil || e.Record.Order == "" || string(kv.Key) != string(seqKey(e.Seq)) {
		return LedgerEntry{}, false
	}
	l = LedgerEntry{Record: e.Record, Status: LedgerPending, QueuedAt: e.EnqueuedAt, Attempts: e.Attempts, Reason: e.LastError}
	switch {
	case !e.DoneAt.IsZero() && e.LastError == "":
		l.Status, l.DeliveredAt = LedgerDelivered, &e.DoneAt
	case !e.DoneAt.IsZero():
		l.Status = LedgerParked
	}
	return l, true
}

func looseBills(loose []boltwalk.KV, ledger map[string][]byte, delivered map[string]bool) (orders []string, open int) {
	rank := map[string]int{LedgerPending: 1, LedgerParked: 2, LedgerDelivered: 3}
	var oldest time.Time
	for _, v := range ledger {
		var l LedgerEntry
		if json.Unmarshal(v, &l) == nil && (oldest.IsZero() || l.QueuedAt.Before(oldest)) {
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
		if _, known := ledger[key]; known || delivered[key] {
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
		data, err := json.Marshal(best[k])
		if err != nil {
			continue
		}
		ledger[k] = data
		orders = append(orders, k)
		if best[k].Status != LedgerDelivered {
			open++
		}
	}
	return orders, open
}
