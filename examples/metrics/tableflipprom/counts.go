package tableflipprom

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// snapshot is what a generation counted, and what it hands to the next.
type snapshot struct {
	// Upgrades counts upgrades by "result reason".
	Upgrades map[string]uint64 `json:"upgrades"`
	// UpgradeDuration by result.
	UpgradeDuration map[string]*histogram `json:"upgrade_duration"`
	Drain           *histogram            `json:"drain"`
}

func newSnapshot() snapshot {
	return snapshot{
		Upgrades:        map[string]uint64{},
		UpgradeDuration: map[string]*histogram{},
		Drain:           newHistogram(DrainBuckets),
	}
}

func upgradeKey(result, reason string) string { return result + " " + reason }

func splitUpgradeKey(k string) (result, reason string) {
	result, reason, _ = strings.Cut(k, " ")
	return result, reason
}

// histogram returns the duration histogram of result, made if need be.
func (s *snapshot) histogram(result string) *histogram {
	h := s.UpgradeDuration[result]
	if h == nil {
		h = newHistogram(UpgradeBuckets)
		s.UpgradeDuration[result] = h
	}
	return h
}

// countUpgrade counts one upgrade, and observes its duration d unless d
// is negative (unknown).
func (s *snapshot) countUpgrade(result, reason string, d time.Duration) {
	s.Upgrades[upgradeKey(result, reason)]++
	if d >= 0 {
		s.histogram(result).observe(d.Seconds())
	}
}

// add adds o's counts to s's.
func (s *snapshot) add(o snapshot) {
	for k, n := range o.Upgrades {
		s.Upgrades[k] += n
	}
	for result, h := range o.UpgradeDuration {
		s.histogram(result).add(h)
	}
	s.Drain.add(o.Drain)
}

var labelValue = regexp.MustCompile(`^[a-z_]{1,32}$`)

// check says what is wrong with a snapshot another generation sent.
func (s *snapshot) check() error {
	for k := range s.Upgrades {
		result, reason := splitUpgradeKey(k)
		if (result != ResultSucceeded && result != ResultFailed) || !labelValue.MatchString(reason) {
			return fmt.Errorf("bad upgrade count %q", k)
		}
	}
	if s.UpgradeDuration == nil {
		s.UpgradeDuration = map[string]*histogram{}
	}
	for result, h := range s.UpgradeDuration {
		if result != ResultSucceeded && result != ResultFailed {
			return fmt.Errorf("bad upgrade result %q", result)
		}
		if err := h.check(UpgradeBuckets); err != nil {
			return fmt.Errorf("upgrade duration: %w", err)
		}
	}
	if s.Drain == nil {
		s.Drain = newHistogram(DrainBuckets)
	}
	if err := s.Drain.check(DrainBuckets); err != nil {
		return fmt.Errorf("drain duration: %w", err)
	}
	if s.Upgrades == nil {
		s.Upgrades = map[string]uint64{}
	}
	return nil
}

// histogram is a Prometheus histogram's content: Counts[i] observations
// up to Bounds[i] (and above the one before), the last one above every
// bound.
type histogram struct {
	Bounds []float64 `json:"bounds"`
	Counts []uint64  `json:"counts"`
	Sum    float64   `json:"sum"`
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{Bounds: bounds, Counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i, _ := slices.BinarySearch(h.Bounds, v) // the first bound >= v
	h.Counts[i]++
	h.Sum += v
}

func (h *histogram) add(o *histogram) {
	if o == nil {
		return
	}
	for i, n := range o.Counts {
		h.Counts[i] += n
	}
	h.Sum += o.Sum
}

func (h *histogram) check(bounds []float64) error {
	if h == nil {
		return fmt.Errorf("missing")
	}
	if !slices.Equal(h.Bounds, bounds) {
		return fmt.Errorf("buckets %v, want %v", h.Bounds, bounds)
	}
	if len(h.Counts) != len(bounds)+1 {
		return fmt.Errorf("%d counts for %d buckets", len(h.Counts), len(bounds)+1)
	}
	if math.IsNaN(h.Sum) || math.IsInf(h.Sum, 0) || h.Sum < 0 {
		return fmt.Errorf("sum %v", h.Sum)
	}
	return nil
}

// metric is h as a constant Prometheus histogram.
func (h *histogram) metric(desc *prometheus.Desc, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		cum += h.Counts[i]
		buckets[b] = cum
	}
	cum += h.Counts[len(h.Bounds)]
	return prometheus.MustNewConstHistogram(desc, cum, h.Sum, buckets, labels...)
}
