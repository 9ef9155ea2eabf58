package state

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Journal is an append-only log of entries that must survive a crash until they are
// marked done: the durable intake's notifications. An append returns once it is on
// disk, and appends made at the same time share one fsync, so durability costs one
// sequential write and one fsync per group of notifications. Done marks are written
// without waiting: losing one in a crash only replays its entry, which callers must
// tolerate. Segments whose entries are all done are deleted.
type Journal struct {
	dir     string
	maxSize int64
	window  time.Duration

	mu      sync.Mutex
	f       *os.File
	seg     uint64            // number of the segment f writes
	size    int64             // bytes of f, counting those a flush is writing
	pending []byte            // records not yet written, in order
	newKeys []string          // keys appended in pending
	spare   []byte            // the buffer a flush gave back, to hold the next records
	queued  uint64            // records put in pending so far
	live    map[string]uint64 // key of each entry not done → its segment
	counts  map[uint64]int    // segment → its entries not done
	err     error
	closed  bool
	timer   bool // a flush of done marks is scheduled

	syncMu   sync.Mutex
	syncCond *sync.Cond
	synced   uint64 // records known to be on disk
	syncing  bool
}

// JournalEntry is an entry found at open that was never marked done.
type JournalEntry struct {
	Key   string
	Value []byte
}

// Record kinds of the journal.
const (
	journalAppend byte = 'A'
	journalDone   byte = 'D'
)

// journalHeader is a record's kind, length and CRC-32C of its body.
const journalHeader = 1 + 4 + 4

// maxJournalRecord bounds a record, so a corrupt length cannot make Open allocate much.
const maxJournalRecord = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// JournalOptions tune a Journal. The zero value is ready to use.
type JournalOptions struct {
	// MaxSegmentSize is the size a segment may reach before the next one starts.
	// Default 64 MiB.
	MaxSegmentSize int64
	// GroupWindow is how long an fsync waits for other appends to join it. Default 1ms:
	// under load one fsync then covers many notifications, at the cost of a millisecond
	// for each.
	GroupWindow time.Duration
}

// OpenJournal opens the journal in dir and returns the entries not done, in the order
// they were appended. A record torn by a crash at the end of the last segment was never
// acknowledged: it is cut off.
func OpenJournal(dir string, opts JournalOptions) (*Journal, []JournalEntry, error) {
	maxSize := opts.MaxSegmentSize
	if maxSize <= 0 {
		maxSize = 64 << 20
	}
	if opts.GroupWindow == 0 {
		opts.GroupWindow = time.Millisecond
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("opening journal: %w", err)
	}
	j := &Journal{dir: dir, maxSize: maxSize, window: opts.GroupWindow, live: map[string]uint64{},
		counts: map[uint64]int{}}
	j.syncCond = sync.NewCond(&j.syncMu)
	pending, err := j.replay()
	if err != nil {
		return nil, nil, err
	}
	if err := j.openSegment(j.seg + 1); err != nil {
		return nil, nil, err
	}
	j.dropDoneSegments()
	return j, pending, nil
}

func (j *Journal) segmentPath(n uint64) string {
	return filepath.Join(j.dir, fmt.Sprintf("journal-%020d.log", n))
}

func (j *Journal) segments() ([]uint64, error) {
	names, err := filepath.Glob(filepath.Join(j.dir, "journal-*.log"))
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, name := range names {
		var n uint64
		base := strings.TrimSuffix(filepath.Base(name), ".log")
		if _, err := fmt.Sscanf(base, "journal-%d", &n); err == nil {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	return out, nil
}

// replay reads every segment and rebuilds what is not done.
func (j *Journal) replay() ([]JournalEntry, error) {
	segs, err := j.segments()
	if err != nil {
		return nil, fmt.Errorf("listing journal segments: %w", err)
	}
	values := map[string][]byte{}
	var order []string
	for i, n := range segs {
		j.seg = n
		j.counts[n] = 0
		last := i == len(segs)-1
		err := j.replaySegment(n, last, func(kind byte, key string, value []byte) {
			switch kind {
			case journalAppend:
				if _, dup := j.live[key]; !dup {
					order = append(order, key)
				}
				j.live[key] = n
				j.counts[n]++
				values[key] = value
			case journalDone:
				if seg, ok := j.live[key]; ok {
					delete(j.live, key)
					j.counts[seg]--
				}
			}
		})
		if err != nil {
			return nil, err
		}
	}
	var pending []JournalEntry
	for _, k := range order {
		if _, ok := j.live[k]; ok {
			pending = append(pending, JournalEntry{Key: k, Value: values[k]})
		}
	}
	return pending, nil
}

func (j *Journal) replaySegment(n uint64, last bool, fn func(kind byte, key string, value []byte)) error {
	path := j.segmentPath(n)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening journal segment: %w", err)
	}
	defer f.Close()

	r := bufio.NewReaderSize(f, 256<<10)
	var good int64
	for {
		kind, body, err := readJournalRecord(r)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if !last {
				return fmt.Errorf("reading %s at byte %d: %w", path, good, err)
			}
			// a torn tail: the append it held never returned, so nobody was told it was kept
			return os.Truncate(path, good)
		}
		good += int64(journalHeader + len(body))
		if err := decodeJournalBody(kind, body, fn); err != nil {
			return fmt.Errorf("reading %s at byte %d: %w", path, good, err)
		}
	}
}

func readJournalRecord(r *bufio.Reader) (byte, []byte, error) {
	var h [journalHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, errors.New("torn record header")
		}
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:5])
	if n > maxJournalRecord || (h[0] != journalAppend && h[0] != journalDone) {
		return 0, nil, errors.New("corrupt record header")
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, errors.New("torn record")
	}
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(h[5:9]) {
		return 0, nil, errors.New("record checksum mismatch")
	}
	return h[0], body, nil
}

// decodeJournalBody splits a body: an append holds one key and its value, a done mark
// holds keys.
func decodeJournalBody(kind byte, body []byte, fn func(byte, string, []byte)) error {
	for len(body) > 0 {
		if len(body) < 2 {
			return errors.New("short key length")
		}
		kl := int(binary.BigEndian.Uint16(body))
		if len(body) < 2+kl {
			return errors.New("short key")
		}
		key := string(body[2 : 2+kl])
		body = body[2+kl:]
		if kind == journalAppend {
			fn(kind, key, body)
			return nil
		}
		fn(kind, key, nil)
	}
	return nil
}

func encodeJournalRecord(kind byte, body []byte) []byte {
	out := make([]byte, journalHeader, journalHeader+len(body))
	out[0] = kind
	binary.BigEndian.PutUint32(out[1:5], uint32(len(body)))
	binary.BigEndian.PutUint32(out[5:9], crc32.Checksum(body, castagnoli))
	return append(out, body...)
}

func appendKey(dst []byte, key string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(key)))
	return append(dst, key...)
}

func (j *Journal) openSegment(n uint64) error {
	f, err := os.OpenFile(j.segmentPath(n), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening journal segment: %w", err)
	}
	if err := syncDir(j.dir); err != nil {
		_ = f.Close()
		return err
	}
	j.f, j.seg, j.size = f, n, 0
	if _, ok := j.counts[n]; !ok {
		j.counts[n] = 0
	}
	return nil
}

// doneFlushDelay is the longest done marks wait in memory when no append comes to
// write them.
const doneFlushDelay = 50 * time.Millisecond

// maxSpare bounds the buffer kept between flushes; a larger one is left to the
// garbage collector.
const maxSpare = 4 << 20

// Append writes value, the concatenation of parts, under key and returns once it is on
// disk. Appends made at the same time are written together and share one fsync.
func (j *Journal) Append(key string, parts ...[]byte) error {
	if len(key) > 0xffff {
		return errors.New("journal key too long")
	}
	var kl [2]byte
	binary.BigEndian.PutUint16(kl[:], uint16(len(key)))
	n := len(kl) + len(key)
	crc := crc32.Update(crc32.Update(0, castagnoli, kl[:]), castagnoli, []byte(key))
	for _, p := range parts {
		n += len(p)
		crc = crc32.Update(crc, castagnoli, p)
	}
	if n > maxJournalRecord {
		return fmt.Errorf("journal record of %d bytes is over the limit of %d", n, maxJournalRecord)
	}

	j.mu.Lock()
	if err := j.usable(); err != nil {
		j.mu.Unlock()
		return err
	}
	j.pending = appendHeader(j.pending, journalAppend, n, crc)
	j.pending = append(append(j.pending, kl[:]...), key...)
	for _, p := range parts {
		j.pending = append(j.pending, p...)
	}
	j.live[key] = j.seg
	j.counts[j.seg]++
	j.newKeys = append(j.newKeys, key)
	j.queued++
	mine := j.queued
	j.mu.Unlock()

	return j.syncThrough(mine)
}

// Done marks keys done. It does not wait for the disk: the marks are written with the
// next appends, or within doneFlushDelay.
func (j *Journal) Done(keys ...string) error {
	var body []byte
	for _, k := range keys {
		body = appendKey(body, k)
	}

	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.usable(); err != nil {
		return err
	}
	j.pending = appendHeader(j.pending, journalDone, len(body), crc32.Checksum(body, castagnoli))
	j.pending = append(j.pending, body...)
	j.queued++
	for _, k := range keys {
		if seg, ok := j.live[k]; ok {
			delete(j.live, k)
			j.counts[seg]--
		}
	}
	j.dropDoneSegments()
	if !j.timer {
		j.timer = true
		time.AfterFunc(doneFlushDelay, j.flushDone)
	}
	return nil
}

// flushDone writes the done marks no append has written.
func (j *Journal) flushDone() {
	j.mu.Lock()
	j.timer = false
	target, closed := j.queued, j.closed
	j.mu.Unlock()
	if !closed {
		_ = j.syncThrough(target) // a failure stops the journal; the next call returns it
	}
}

// appendHeader appends a record's kind, body length and body CRC.
func appendHeader(dst []byte, kind byte, n int, crc uint32) []byte {
	dst = append(dst, kind)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	return binary.BigEndian.AppendUint32(dst, crc)
}

// take hands the pending records to a flush: it rotates first when the segment is
// full, and counts the records' bytes against the segment they will be written to.
// j.mu is held.
func (j *Journal) take() ([]byte, *os.File, uint64, error) {
	if j.err != nil {
		return nil, nil, 0, j.err // what reached the disk is unknown: write nothing more
	}
	if j.f == nil {
		return nil, nil, 0, ErrClosed
	}
	if j.size > 0 && j.size+int64(len(j.pending)) > j.maxSize {
		if err := j.rotate(); err != nil {
			return nil, nil, 0, j.fail(err)
		}
	}
	if len(j.pending) == 0 {
		return nil, j.f, j.queued, nil
	}
	buf := j.pending
	j.pending, j.spare = j.spare[:0], nil
	j.newKeys = j.newKeys[:0]
	j.size += int64(len(buf))
	return buf, j.f, j.queued, nil
}

// giveBack keeps a written buffer for the next records. j.mu is held.
func (j *Journal) giveBack(buf []byte) {
	if cap(buf) <= maxSpare {
		j.spare = buf[:0]
	}
}

// rotate syncs and closes the active segment and starts the next, moving the entries
// waiting to be written to it. j.mu is held.
func (j *Journal) rotate() error {
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("syncing journal before rotating: %w", err)
	}
	if err := j.f.Close(); err != nil {
		return fmt.Errorf("closing journal before rotating: %w", err)
	}
	old := j.seg
	if err := j.openSegment(j.seg + 1); err != nil {
		return err
	}
	for _, k := range j.newKeys {
		if j.live[k] == old {
			j.live[k] = j.seg
			j.counts[old]--
			j.counts[j.seg]++
		}
	}
	return nil
}

// dropDoneSegments deletes the oldest segments while all their entries are done. Only
// a prefix goes, so a done mark is never lost while the entry it marks is still kept.
// j.mu is held.
func (j *Journal) dropDoneSegments() {
	segs := make([]uint64, 0, len(j.counts))
	for n := range j.counts {
		segs = append(segs, n)
	}
	sort.Slice(segs, func(a, b int) bool { return segs[a] < segs[b] })
	for _, n := range segs {
		if n == j.seg || j.counts[n] > 0 {
			return
		}
		if err := os.Remove(j.segmentPath(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return
		}
		delete(j.counts, n)
	}
}

func (j *Journal) usable() error {
	if j.closed {
		return ErrClosed
	}
	return j.err
}

func (j *Journal) fail(err error) error {
	if j.err == nil {
		j.err = err
	}
	return j.err
}

// syncThrough returns once record number n is on disk. One caller, the leader, writes
// and fsyncs every record queued before it starts; the others wait for it.
func (j *Journal) syncThrough(n uint64) error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	for j.synced < n {
		if j.syncing {
			j.syncCond.Wait()
			continue
		}
		j.syncing = true
		j.syncMu.Unlock()
		target, err := j.flush()
		j.syncMu.Lock()
		j.syncing = false
		j.syncCond.Broadcast()
		if err != nil {
			return err
		}
		j.synced = max(j.synced, target)
	}
	return nil
}

// flush writes the pending records and fsyncs them, and returns the number of the last.
func (j *Journal) flush() (uint64, error) {
	// let appends made meanwhile join this write and its fsync
	time.Sleep(j.window)
	j.mu.Lock()
	buf, f, target, err := j.take()
	j.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if len(buf) == 0 {
		// every record queued went to earlier flushes, which this one waited for
		return target, nil
	}

	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		return 0, j.fail(fmt.Errorf("writing journal: %w", err))
	}
	j.giveBack(buf)
	return target, nil
}

// Close writes and syncs what is pending and closes the journal.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	target := j.queued
	j.mu.Unlock()

	syncErr := j.syncThrough(target)
	j.mu.Lock()
	defer j.mu.Unlock()
	closeErr := j.f.Close()
	j.f = nil
	return errors.Join(syncErr, closeErr)
}

// Pending counts the entries not done.
func (j *Journal) Pending() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.live)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
