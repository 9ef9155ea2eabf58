package state

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Internal buckets; callers' buckets live under their own names with a prefix.
var (
	leasesBucket  = []byte("leases")
	windowsBucket = []byte("windows")
)

const userBucketPrefix = "r/"

// BoltOptions configure a Bolt store.
type BoltOptions struct {
	// Now is the clock; default time.Now.
	Now func() time.Time
	// SweepEvery is how often expired records are removed. Default 1m.
	SweepEvery time.Duration
	// ReadOnly opens the file without taking it over, for inspection by the CLI.
	ReadOnly bool
}

// Bolt is a Store in one bbolt file: the embedded default, for one replica.
type Bolt struct {
	db   *bolt.DB
	now  func() time.Time
	stop chan struct{}
	wg   sync.WaitGroup
}

// OpenBolt opens or creates the store in dir/state.db. It fails quickly when another
// process holds the file.
func OpenBolt(dir string, opts BoltOptions) (*Bolt, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SweepEvery == 0 {
		opts.SweepEvery = time.Minute
	}
	path := filepath.Join(dir, "state.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:  2 * time.Second,
		ReadOnly: opts.ReadOnly,
		// the free list is rebuilt at open instead of written at every commit
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("opening %s: another process holds it", path)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	b := &Bolt{db: db, now: opts.Now, stop: make(chan struct{})}
	if !opts.ReadOnly {
		b.wg.Go(func() { b.sweep(opts.SweepEvery) })
	}
	return b, nil
}

// Close stops the sweeper and closes the file.
func (b *Bolt) Close() error {
	select {
	case <-b.stop:
		return nil
	default:
	}
	close(b.stop)
	b.wg.Wait()
	return b.db.Close()
}

type lease struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

// AcquireLease implements Store.
func (b *Bolt) AcquireLease(ctx context.Context, key, owner string, ttl time.Duration) (bool, string, error) {
	ok, holder := false, ""
	err := b.update(ctx, func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(leasesBucket)
		if err != nil {
			return err
		}
		now := b.now()
		var cur lease
		if raw := bk.Get([]byte(key)); raw != nil {
			if err := json.Unmarshal(raw, &cur); err != nil {
				return fmt.Errorf("decoding lease %s: %w", key, err)
			}
			if cur.Owner != owner && now.Before(cur.Expires) {
				holder = cur.Owner
				return nil
			}
		}
		ok = true
		raw, _ := json.Marshal(lease{Owner: owner, Expires: now.Add(ttl)})
		return bk.Put([]byte(key), raw)
	})
	return ok, holder, err
}

// ReleaseLease implements Store.
func (b *Bolt) ReleaseLease(ctx context.Context, key, owner string) error {
	return b.update(ctx, func(tx *bolt.Tx) error {
		bk := tx.Bucket(leasesBucket)
		if bk == nil {
			return nil
		}
		var cur lease
		raw := bk.Get([]byte(key))
		if raw == nil || json.Unmarshal(raw, &cur) != nil || cur.Owner != owner {
			// not ours to release
			return nil
		}
		return bk.Delete([]byte(key))
	})
}

type use struct {
	At time.Time `json:"at"`
	ID string    `json:"id"`
}

// Reserve implements Store.
func (b *Bolt) Reserve(ctx context.Context, key, id string, max int, window time.Duration) (Reservation, error) {
	var res Reservation
	err := b.update(ctx, func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(windowsBucket)
		if err != nil {
			return err
		}
		now := b.now()
		uses, err := inWindow(bk.Get([]byte(key)), now, window)
		if err != nil {
			return fmt.Errorf("decoding window %s: %w", key, err)
		}
		for _, u := range uses {
			if u.ID == id {
				res = reservation(true, uses)
				return nil
			}
		}
		if len(uses) >= max {
			res = reservation(false, uses)
			return nil
		}
		uses = append(uses, use{At: now, ID: id})
		res = reservation(true, uses)
		raw, _ := json.Marshal(uses)
		return bk.Put([]byte(key), raw)
	})
	return res, err
}

// Uses implements Store.
func (b *Bolt) Uses(ctx context.Context, key string, window time.Duration) (Reservation, error) {
	var res Reservation
	err := b.view(ctx, func(tx *bolt.Tx) error {
		var raw []byte
		if bk := tx.Bucket(windowsBucket); bk != nil {
			raw = bk.Get([]byte(key))
		}
		uses, err := inWindow(raw, b.now(), window)
		res = reservation(false, uses)
		return err
	})
	return res, err
}

func inWindow(raw []byte, now time.Time, window time.Duration) ([]use, error) {
	if raw == nil {
		return nil, nil
	}
	var all []use
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, err
	}
	start := now.Add(-window)
	kept := all[:0]
	for _, u := range all {
		if u.At.After(start) {
			kept = append(kept, u)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].At.Before(kept[j].At) })
	return kept, nil
}

func reservation(ok bool, uses []use) Reservation {
	r := Reservation{OK: ok, Used: len(uses)}
	if len(uses) > 0 {
		r.Oldest = uses[0].At
	}
	return r
}

// Put implements Store.
func (b *Bolt) Put(ctx context.Context, bucket string, r Record) error {
	return b.update(ctx, func(tx *bolt.Tx) error { return b.put(tx, bucket, r) })
}

// PutIfAbsent implements Store.
func (b *Bolt) PutIfAbsent(ctx context.Context, bucket string, r Record) (bool, error) {
	wrote := false
	err := b.update(ctx, func(tx *bolt.Tx) error {
		if bk := tx.Bucket(userBucket(bucket)); bk != nil {
			if _, live := b.decode(bk.Get([]byte(r.Key))); live {
				return nil
			}
		}
		wrote = true
		return b.put(tx, bucket, r)
	})
	return wrote, err
}

// Get implements Store.
func (b *Bolt) Get(ctx context.Context, bucket, key string) ([]byte, bool, error) {
	var out []byte
	found := false
	err := b.view(ctx, func(tx *bolt.Tx) error {
		bk := tx.Bucket(userBucket(bucket))
		if bk == nil {
			return nil
		}
		v, live := b.decode(bk.Get([]byte(key)))
		if live {
			out, found = append([]byte(nil), v...), true
		}
		return nil
	})
	return out, found, err
}

// Delete implements Store.
func (b *Bolt) Delete(ctx context.Context, bucket, key string) error {
	return b.update(ctx, func(tx *bolt.Tx) error {
		bk := tx.Bucket(userBucket(bucket))
		if bk == nil {
			return nil
		}
		return bk.Delete([]byte(key))
	})
}

// Scan implements Store.
func (b *Bolt) Scan(ctx context.Context, bucket string, fn func(key string, value []byte) error) error {
	return b.view(ctx, func(tx *bolt.Tx) error {
		bk := tx.Bucket(userBucket(bucket))
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(k, raw []byte) error {
			v, live := b.decode(raw)
			if !live {
				return nil
			}
			return fn(string(k), append([]byte(nil), v...))
		})
	})
}

func userBucket(name string) []byte { return []byte(userBucketPrefix + name) }

// put writes r with its expiry, as 8 bytes of Unix nanoseconds (0: never) before the value.
func (b *Bolt) put(tx *bolt.Tx, bucket string, r Record) error {
	bk, err := tx.CreateBucketIfNotExists(userBucket(bucket))
	if err != nil {
		return err
	}
	var expires int64
	if r.TTL > 0 {
		expires = b.now().Add(r.TTL).UnixNano()
	}
	raw := make([]byte, 8+len(r.Value))
	binary.BigEndian.PutUint64(raw, uint64(expires))
	copy(raw[8:], r.Value)
	return bk.Put([]byte(r.Key), raw)
}

// decode returns a stored value and whether it is still alive.
func (b *Bolt) decode(raw []byte) ([]byte, bool) {
	if len(raw) < 8 {
		return nil, false
	}
	expires := int64(binary.BigEndian.Uint64(raw))
	if expires != 0 && b.now().UnixNano() >= expires {
		return nil, false
	}
	return raw[8:], true
}

func (b *Bolt) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return wrapClosed(b.db.Update(fn))
}

func (b *Bolt) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return wrapClosed(b.db.View(fn))
}

func wrapClosed(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// sweep removes expired records now and then.
func (b *Bolt) sweep(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			_ = b.sweepOnce()
		}
	}
}

func (b *Bolt) sweepOnce() error {
	return b.db.Update(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			if len(name) < len(userBucketPrefix) || string(name[:len(userBucketPrefix)]) != userBucketPrefix {
				return nil
			}
			var dead [][]byte
			_ = bk.ForEach(func(k, raw []byte) error {
				if _, live := b.decode(raw); !live {
					dead = append(dead, append([]byte(nil), k...))
				}
				return nil
			})
			for _, k := range dead {
				if err := bk.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	})
}
