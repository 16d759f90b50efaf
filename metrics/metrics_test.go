package metrics

import "testing"

// TestStatusClass: the metrics label of every status, from constants.
func TestStatusClass(t *testing.T) {
	for code, want := range map[int]string{0: "other", 99: "other", 100: "1xx", 200: "2xx", 204: "2xx", 304: "3xx", 401: "4xx", 499: "4xx", 500: "5xx", 599: "5xx", 600: "other"} {
		if got := statusClass(code); got != want {
			t.Errorf("statusClass(%d) = %q, want %q", code, got, want)
		}
	}
	if a := testing.AllocsPerRun(100, func() { _ = statusClass(200) }); a != 0 {
		t.Errorf("%.0f allocations per label", a)
	}
}
