// Package statetest is the conformance suite every state.Store implementation must
// pass. It holds tests only; nothing here runs in production.
package statetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remediator/remediator/state"
)

// Clock is a settable clock for stores under test.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at a fixed time.
func NewClock() *Clock { return &Clock{now: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Opener opens a fresh, empty store on clock. Reopen opens the same store again after
// Close, for durability checks; it may be nil when the implementation has no such
// notion.
type Opener struct {
	Open   func(t *testing.T, clock *Clock) state.Store
	Reopen func(t *testing.T, clock *Clock) state.Store
}

// Run runs the suite.
func Run(t *testing.T, o Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"a lease excludes other owners until it expires", testLeaseExcludes},
		{"a lease is renewed by its owner and released only by it", testLeaseRenewRelease},
		{"a lease goes to one of many concurrent owners", testLeaseConcurrent},
		{"reserve counts uses in a sliding window", testReserveWindow},
		{"reserve does not count the same id twice", testReserveIdempotent},
		{"concurrent reservations never exceed the maximum", testReserveConcurrent},
		{"records expire after their ttl", testRecordTTL},
		{"put if absent writes once per live key", testPutIfAbsent},
		{"scan returns live records in key order", testScanOrder},
		{"concurrent puts all land", testPutConcurrent},
		{"everything survives a reopen", testReopen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, o) })
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func testLeaseExcludes(t *testing.T, o Opener) {
	clock := NewClock()
	s := o.Open(t, clock)
	ctx := context.Background()
	if ok, _, err := s.AcquireLease(ctx, "target", "a", time.Minute); err != nil || !ok {
		t.Fatalf("first acquire: %v %v", ok, err)
	}
	ok, holder, err := s.AcquireLease(ctx, "target", "b", time.Minute)
	if err != nil || ok || holder != "a" {
		t.Fatalf("second owner got the lease: ok=%v holder=%q err=%v", ok, holder, err)
	}
	clock.Advance(61 * time.Second)
	if ok, _, err := s.AcquireLease(ctx, "target", "b", time.Minute); err != nil || !ok {
		t.Fatalf("an expired lease was not taken over: %v %v", ok, err)
	}
}

func testLeaseRenewRelease(t *testing.T, o Opener) {
	clock := NewClock()
	s := o.Open(t, clock)
	ctx := context.Background()
	must[bool](t)(func() (bool, error) { ok, _, err := s.AcquireLease(ctx, "k", "a", time.Minute); return ok, err }())
	clock.Advance(50 * time.Second)
	if ok, _, _ := s.AcquireLease(ctx, "k", "a", time.Minute); !ok {
		t.Fatal("the owner could not renew")
	}
	clock.Advance(50 * time.Second)
	if ok, _, _ := s.AcquireLease(ctx, "k", "b", time.Minute); ok {
		t.Fatal("a renewed lease expired at its first deadline")
	}
	if err := s.ReleaseLease(ctx, "k", "b"); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := s.AcquireLease(ctx, "k", "b", time.Minute); ok {
		t.Fatal("another owner released the lease")
	}
	if err := s.ReleaseLease(ctx, "k", "a"); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := s.AcquireLease(ctx, "k", "b", time.Minute); !ok {
		t.Fatal("a released lease could not be taken")
	}
}

func testLeaseConcurrent(t *testing.T, o Opener) {
	s := o.Open(t, NewClock())
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			ok, _, err := s.AcquireLease(context.Background(), "k", fmt.Sprint("owner", i), time.Minute)
			if err != nil {
				t.Error(err)
			}
			if ok {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d owners got the lease, want 1", won.Load())
	}
}

func testReserveWindow(t *testing.T, o Opener) {
	clock := NewClock()
	s := o.Open(t, clock)
	ctx := context.Background()
	week := 168 * time.Hour
	for i := range 4 {
		r := must[state.Reservation](t)(s.Reserve(ctx, "le", fmt.Sprint(i), 4, week))
		if !r.OK || r.Used != i+1 {
			t.Fatalf("use %d: %+v", i, r)
		}
		clock.Advance(24 * time.Hour)
	}
	r := must[state.Reservation](t)(s.Reserve(ctx, "le", "5", 4, week))
	if r.OK || r.Used != 4 {
		t.Fatalf("fifth use within the week: %+v", r)
	}
	u := must[state.Reservation](t)(s.Uses(ctx, "le", week))
	if u.Used != 4 || u.OK {
		t.Fatalf("uses %+v", u)
	}
	clock.Advance(73 * time.Hour) // the first use is now 169h old
	r = must[state.Reservation](t)(s.Reserve(ctx, "le", "5", 4, week))
	if !r.OK || r.Used != 4 {
		t.Fatalf("the window did not slide: %+v", r)
	}
}

func testReserveIdempotent(t *testing.T, o Opener) {
	s := o.Open(t, NewClock())
	ctx := context.Background()
	for range 3 {
		r := must[state.Reservation](t)(s.Reserve(ctx, "k", "run-1/step", 2, time.Hour))
		if !r.OK || r.Used != 1 {
			t.Fatalf("repeated reservation counted again: %+v", r)
		}
	}
}

func testReserveConcurrent(t *testing.T, o Opener) {
	s := o.Open(t, NewClock())
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			r, err := s.Reserve(context.Background(), "k", fmt.Sprint(i), 4, time.Hour)
			if err != nil {
				t.Error(err)
			}
			if r.OK {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 4 {
		t.Fatalf("%d reservations granted, want 4", ok.Load())
	}
}

func testRecordTTL(t *testing.T, o Opener) {
	clock := NewClock()
	s := o.Open(t, clock)
	ctx := context.Background()
	if err := s.Put(ctx, "b", state.Record{Key: "k", Value: []byte("v"), TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "b", state.Record{Key: "forever", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Get(ctx, "b", "k"); err != nil || !ok || string(v) != "v" {
		t.Fatalf("get before expiry: %q %v %v", v, ok, err)
	}
	clock.Advance(time.Hour)
	if _, ok, _ := s.Get(ctx, "b", "k"); ok {
		t.Fatal("record outlived its ttl")
	}
	if _, ok, _ := s.Get(ctx, "b", "forever"); !ok {
		t.Fatal("a record without ttl expired")
	}
	if err := s.Delete(ctx, "b", "forever"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Get(ctx, "b", "forever"); ok {
		t.Fatal("deleted record still there")
	}
	if err := s.Delete(ctx, "b", "missing"); err != nil {
		t.Fatalf("deleting a missing record: %v", err)
	}
}

func testPutIfAbsent(t *testing.T, o Opener) {
	clock := NewClock()
	s := o.Open(t, clock)
	ctx := context.Background()
	r := state.Record{Key: "occurrence", Value: []byte("1"), TTL: time.Hour}
	if wrote := must[bool](t)(s.PutIfAbsent(ctx, "dedup", r)); !wrote {
		t.Fatal("first write refused")
	}
	if wrote := must[bool](t)(s.PutIfAbsent(ctx, "dedup", r)); wrote {
		t.Fatal("second write accepted")
	}
	clock.Advance(time.Hour)
	if wrote := must[bool](t)(s.PutIfAbsent(ctx, "dedup", r)); !wrote {
		t.Fatal("write after expiry refused")
	}
}

func testScanOrder(t *testing.T, o Opener) {
	clock := NewClock()
	s := o.Open(t, clock)
	ctx := context.Background()
	for _, k := range []string{"c", "a", "b"} {
		if err := s.Put(ctx, "b", state.Record{Key: k, Value: []byte(k)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, "b", state.Record{Key: "aa", Value: []byte("x"), TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	var got []string
	err := s.Scan(ctx, "b", func(k string, v []byte) error {
		got = append(got, k+"="+string(v))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[a=a b=b c=c]" {
		t.Fatalf("scan %v", got)
	}
}

func testPutConcurrent(t *testing.T, o Opener) {
	s := o.Open(t, NewClock())
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			if err := s.Put(context.Background(), "b", state.Record{Key: fmt.Sprintf("%02d", i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	n := 0
	_ = s.Scan(context.Background(), "b", func(string, []byte) error { n++; return nil })
	if n != 32 {
		t.Fatalf("%d records, want 32", n)
	}
}

func testReopen(t *testing.T, o Opener) {
	if o.Reopen == nil {
		t.Skip("the implementation cannot be reopened")
	}
	clock := NewClock()
	s := o.Open(t, clock)
	ctx := context.Background()
	if _, _, err := s.AcquireLease(ctx, "l", "a", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, "w", "1", 1, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "intake", state.Record{Key: "x", Value: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = o.Reopen(t, clock)
	if ok, _, _ := s.AcquireLease(ctx, "l", "b", time.Hour); ok {
		t.Error("lease lost across reopen")
	}
	if r, _ := s.Reserve(ctx, "w", "2", 1, time.Hour); r.OK {
		t.Error("window lost across reopen")
	}
	if v, ok, _ := s.Get(ctx, "intake", "x"); !ok || string(v) != "y" {
		t.Error("record lost across reopen")
	}
}
