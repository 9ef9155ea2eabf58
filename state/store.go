package state

import (
	"context"
	"errors"
	"time"
)

// ErrClosed is returned by a store that has been closed.
var ErrClosed = errors.New("state store closed")

// Record is one key and value, for batched writes.
type Record struct {
	Key   string
	Value []byte
	// TTL is how long the record lives; 0 keeps it until it is deleted.
	TTL time.Duration
}

// Reservation is the answer to Reserve.
type Reservation struct {
	// OK is true when the use was recorded.
	OK bool
	// Used counts the uses in the window, this one included when OK.
	Used int
	// Oldest is when the oldest use in the window was made; the window frees a use
	// when it falls out.
	Oldest time.Time
}

// Store is what guards and intake need remembered. Every write is durable when the
// call returns. Implementations are safe for concurrent use, also by several processes
// or replicas where they say so.
type Store interface {
	// AcquireLease takes key for owner until ttl passes, or renews it when owner holds
	// it already. It returns false, and the holder, when another owner holds an
	// unexpired lease.
	AcquireLease(ctx context.Context, key, owner string, ttl time.Duration) (ok bool, holder string, err error)
	// ReleaseLease gives key up if owner holds it.
	ReleaseLease(ctx context.Context, key, owner string) error

	// Reserve records one use of key, identified by id, unless max uses already fall in
	// the window that ends now. A use with an id already recorded is not counted twice.
	Reserve(ctx context.Context, key, id string, max int, window time.Duration) (Reservation, error)
	// Uses counts the uses of key in the window that ends now, without recording one.
	Uses(ctx context.Context, key string, window time.Duration) (Reservation, error)

	// Put writes a record into bucket.
	Put(ctx context.Context, bucket string, r Record) error
	// PutIfAbsent writes r unless an unexpired record has its key; it reports whether it
	// wrote.
	PutIfAbsent(ctx context.Context, bucket string, r Record) (bool, error)
	// Get reads an unexpired record.
	Get(ctx context.Context, bucket, key string) ([]byte, bool, error)
	// Delete removes a record; removing a missing one is no error.
	Delete(ctx context.Context, bucket, key string) error
	// Scan calls fn for each unexpired record of bucket in key order, until fn returns
	// an error.
	Scan(ctx context.Context, bucket string, fn func(key string, value []byte) error) error

	Close() error
}
