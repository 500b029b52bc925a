package otlp

import "sync"

// queue is a bounded FIFO between a sink goroutine (push, never blocks)
// and one export goroutine (take).
type queue[T any] struct {
	mu    sync.Mutex
	items []T
	max   int
	wake  chan struct{}
}

func newQueue[T any](max int) *queue[T] {
	return &queue[T]{max: max, wake: make(chan struct{}, 1)}
}

// push adds v, or reports false when the queue is full.
func (q *queue[T]) push(v T) bool {
	q.mu.Lock()
	if len(q.items) >= q.max {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, v)
	n := len(q.items)
	q.mu.Unlock()
	if n >= exportBatch {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// take removes up to n items from the front.
func (q *queue[T]) take(n int) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = min(n, len(q.items))
	if n == 0 {
		return nil
	}
	out := make([]T, n)
	copy(out, q.items)
	rest := copy(q.items, q.items[n:])
	clear(q.items[rest:])
	q.items = q.items[:rest]
	return out
}

func (q *queue[T]) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
