package audit

import (
	"fmt"
	"testing"
)

// BenchmarkAppend appends fsynced records from many goroutines at once, as concurrent
// runs and receipts do, and reports records/s and how many records each fsync covered.
func BenchmarkAppend(b *testing.B) {
	for _, perCPU := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("goroutines_per_cpu=%d", perCPU), func(b *testing.B) {
			benchmarkAppend(b, perCPU, (*Log).Append)
		})
	}
}

// BenchmarkAppendAsync appends without waiting for fsyncs, then closes the log, whose
// final fsync is counted.
func BenchmarkAppendAsync(b *testing.B) {
	benchmarkAppend(b, 16, (*Log).AppendAsync)
}

func benchmarkAppend(b *testing.B, perCPU int, add func(*Log, Record) error) {
	l, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	rec := stepRecord("01HZX3K9Q7V5N2M8R4T6W1Y0BC", 1)
	b.SetParallelism(perCPU)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := add(l, rec); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()

	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(b.N)/float64(max(l.syncs.Load(), 1)), "records/fsync")
}
