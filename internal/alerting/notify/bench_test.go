package notify

import "testing"

// BenchmarkNotifyOverload measures Notify of 10 000 alerts against full
// queues, the case where the engine must not notice a dead receiver.
func BenchmarkNotifyOverload(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"log+webhook", Options{QueueSize: 1, WebhookURL: "http://127.0.0.1:1"}},
		{"log+alertmanager", Options{QueueSize: 1, AlertmanagerURLs: []string{"http://127.0.0.1:1"}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			d, err := New(tc.opts)
			if err != nil {
				b.Fatal(err)
			}
			alerts := make([]Alert, 10000)
			for i := range alerts {
				alerts[i] = testAlert("Bench")
			}
			for b.Loop() {
				d.Notify(alerts)
			}
		})
	}
}
