package state

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Memory is a Store that forgets everything when the process ends: for tests, and for
// plans made where the real store cannot be opened.
type Memory struct {
	mu      sync.Mutex
	now     func() time.Time
	leases  map[string]lease
	windows map[string][]use
	buckets map[string]map[string]memRecord
}

type memRecord struct {
	value   []byte
	expires time.Time
}

// NewMemory returns an empty in-memory store on clock now (nil: time.Now).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, leases: map[string]lease{}, windows: map[string][]use{},
		buckets: map[string]map[string]memRecord{}}
}

// AcquireLease implements Store.
func (m *Memory) AcquireLease(_ context.Context, key, owner string, ttl time.Duration) (bool, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()

	now := m.now()
	if cur, ok := m.leases[key]; ok && cur.Owner != owner && now.Before(cur.Expires) {
		return false, cur.Owner, nil
	}
	m.leases[key] = lease{Owner: owner, Expires: now.Add(ttl)}
	return true, "", nil
}

// ReleaseLease implements Store.
func (m *Memory) ReleaseLease(_ context.Context, key, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()

	if m.leases[key].Owner == owner {
		delete(m.leases, key)
	}
	return nil
}

// Reserve implements Store.
func (m *Memory) Reserve(_ context.Context, key, id string, max int, window time.Duration) (Reservation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()

	now := m.now()
	uses := m.inWindow(key, now, window)
	for _, u := range uses {
		if u.ID == id {
			return reservation(true, uses), nil
		}
	}
	if len(uses) >= max {
		return reservation(false, uses), nil
	}
	uses = append(uses, use{At: now, ID: id})
	m.windows[key] = uses
	return reservation(true, uses), nil
}

// Uses implements Store.
func (m *Memory) Uses(_ context.Context, key string, window time.Duration) (Reservation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()

	return reservation(false, m.inWindow(key, m.now(), window)), nil
}

func (m *Memory) inWindow(key string, now time.Time, window time.Duration) []use {
	start := now.Add(-window)
	var kept []use
	for _, u := range m.windows[key] {
		if u.At.After(start) {
			kept = append(kept, u)
		}
	}
	return kept
}

// Put implements Store.
func (m *Memory) Put(_ context.Context, bucket string, r Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()

	m.put(bucket, r)
	return nil
}

func (m *Memory) put(bucket string, r Record) {
	b := m.buckets[bucket]
	if b == nil {
		b = map[string]memRecord{}
		m.buckets[bucket] = b
	}
	rec := memRecord{value: append([]byte(nil), r.Value...)}
	if r.TTL > 0 {
		rec.expires = m.now().Add(r.TTL)
	}
	b[r.Key] = rec
}

// PutIfAbsent implements Store.
func (m *Memory) PutIfAbsent(_ context.Context, bucket string, r Record) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()

	if _, live := m.get(bucket, r.Key); live {
		return false, nil
	}
	m.put(bucket, r)
	return true, nil
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, bucket, key string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()

	v, ok := m.get(bucket, key)
	return append([]byte(nil), v...), ok, nil
}

func (m *Memory) get(bucket, key string) ([]byte, bool) {
	rec, ok := m.buckets[bucket][key]
	if !ok || (!rec.expires.IsZero() && !m.now().Before(rec.expires)) {
		return nil, false
	}
	return rec.value, true
}

// Delete implements Store.
func (m *Memory) Delete(_ context.Context, bucket, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()

	delete(m.buckets[bucket], key)
	return nil
}

// Scan implements Store.
func (m *Memory) Scan(_ context.Context, bucket string, fn func(key string, value []byte) error) error {
	m.mu.Lock()
	keys := make([]string, 0, len(m.buckets[bucket]))
	for k := range m.buckets[bucket] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var live [][2][]byte
	for _, k := range keys {
		if v, ok := m.get(bucket, k); ok {
			live = append(live, [2][]byte{[]byte(k), append([]byte(nil), v...)})
		}
	}
	m.mu.Unlock()

	for _, kv := range live {
		if err := fn(string(kv[0]), kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// Close implements Store.
func (m *Memory) Close() error { return nil }
