package virustotal

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/safeopen"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DBFile is the name of the state database inside Config.StateDir.
const DBFile = "vt.db"

var (
	bucketCache = []byte("cache") // hash → cacheEntry
	bucketQueue = []byte("queue") // hash → item
	bucketMeta  = []byte("meta")  // "budget" → budget
	keyBudget   = []byte("budget")
)

// cacheEntry is a cached lookup outcome: a verdict, or "not found".
type cacheEntry struct {
	Found           bool   `json:"found"`
	Expires         int64  `json:"expires"` // unix nanos
	Malicious       int64  `json:"malicious,omitempty"`
	Suspicious      int64  `json:"suspicious,omitempty"`
	Harmless        int64  `json:"harmless,omitempty"`
	Undetected      int64  `json:"undetected,omitempty"`
	Reputation      int64  `json:"reputation,omitempty"`
	ThreatLabel     string `json:"threat_label,omitempty"`
	MeaningfulName  string `json:"meaningful_name,omitempty"`
	FirstSubmission int64  `json:"first_submission,omitempty"`
	LastAnalysis    int64  `json:"last_analysis,omitempty"`
	Link            string `json:"link,omitempty"`
}

// result renders the entry as the event's VirusTotal outcome. Each call
// returns fresh values, so events never share them.
func (c *cacheEntry) result(hash string) *audit.VTResult {
	if !c.Found {
		return &audit.VTResult{Status: StatusNotFound, Hash: hash}
	}
	return &audit.VTResult{Status: StatusHit, Hash: hash, VTVerdict: &audit.VTVerdict{
		Malicious:       c.Malicious,
		Suspicious:      c.Suspicious,
		Harmless:        c.Harmless,
		Undetected:      c.Undetected,
		Reputation:      c.Reputation,
		ThreatLabel:     c.ThreatLabel,
		MeaningfulName:  c.MeaningfulName,
		FirstSubmission: c.FirstSubmission,
		LastAnalysis:    c.LastAnalysis,
		Link:            c.Link,
	}}
}

// store is vt.db: the disk cache, the pending queue and the budget
// counters, in one bbolt file. bbolt serialises writers and lets readers run
// concurrently, so store is safe for concurrent use.
type store struct {
	db *bolt.DB
}

// openStore opens (or creates) dir/vt.db. A file bbolt cannot read is moved
// aside (vt.db.corrupt-UNIXTIME) and replaced by an empty one, so a damaged
// cache costs lookups but never stops the plugin. A file locked by another
// process is an error.
func openStore(dir string, log *slog.Logger) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("virustotal: state_dir: %w", err)
	}
	path := filepath.Join(dir, DBFile)
	open := func() (*bolt.DB, error) {
		// Root opens it before the switch to the service user, who owns
		// dir: a link or FIFO in its place is not followed (safeopen), the
		// open fails and the entry is moved aside below.
		return bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, OpenFile: safeopen.OpenFile})
	}
	db, err := open()
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("virustotal: %s is locked by another process", path)
	}
	if err != nil {
		aside := fmt.Sprintf("%s.corrupt-%d", path, time.Now().Unix())
		log.Error("virustotal: state database unreadable; moving it aside and starting empty",
			"file", path, "moved_to", aside, "err", err)
		if rerr := os.Rename(path, aside); rerr != nil {
			return nil, fmt.Errorf("virustotal: %s: %w (and moving it aside failed: %v)", path, err, rerr)
		}
		if db, err = open(); err != nil {
			return nil, fmt.Errorf("virustotal: %s: %w", path, err)
		}
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketCache, bucketQueue, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("virustotal: %s: %w", path, err)
	}
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

// entry reads the cache entry for hash. A missing, expired or undecodable
// entry is a miss; errors are reported only for the last case and for a
// database failure.
func (s *store) entry(hash string, now time.Time) (cacheEntry, bool, error) {
	var e cacheEntry
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketCache).Get([]byte(hash))
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("cache entry %s: %w", hash, err)
		}
		found = e.Expires > now.UnixNano()
		return nil
	})
	return e, found, err
}

// loadBudget fills the persisted fields of b; a missing record leaves it empty.
func (s *store) loadBudget(b *budget) error {
	return s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keyBudget)
		if v == nil {
			return nil
		}
		return json.Unmarshal(v, b)
	})
}

// loadQueue returns the persisted pending items. Undecodable items are
// deleted and reported in bad.
func (s *store) loadQueue() (items []*item, bad []error, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketQueue)
		var del [][]byte
		err := b.ForEach(func(k, v []byte) error {
			it := new(item)
			if err := json.Unmarshal(v, it); err != nil || it.Hash != string(k) || !validHex(it.Hash) {
				if err == nil {
					err = errors.New("hash does not match its key")
				}
				bad = append(bad, fmt.Errorf("queue item %q: %w", k, err))
				del = append(del, append([]byte(nil), k...))
				return nil
			}
			items = append(items, it)
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range del {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return items, bad, err
}

// write is one atomic update of vt.db.
type write struct {
	entries map[string][]byte // cache puts
	items   map[string][]byte // queue puts
	dropped []string          // queue deletes
	budget  []byte            // nil: unchanged
}

func (s *store) apply(w write) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		c, q := tx.Bucket(bucketCache), tx.Bucket(bucketQueue)
		for k, v := range w.entries {
			if err := c.Put([]byte(k), v); err != nil {
				return err
			}
		}
		for k, v := range w.items {
			if err := q.Put([]byte(k), v); err != nil {
				return err
			}
		}
		for _, k := range w.dropped {
			if err := q.Delete([]byte(k)); err != nil {
				return err
			}
		}
		if w.budget != nil {
			return tx.Bucket(bucketMeta).Put(keyBudget, w.budget)
		}
		return nil
	})
}

// purge deletes expired and undecodable cache entries and returns how many
// went.
func (s *store) purge(now time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketCache).Cursor()
		for k, v := c.First(); k != nil; {
			var e cacheEntry
			if json.Unmarshal(v, &e) != nil || e.Expires <= now.UnixNano() {
				if err := c.Delete(); err != nil {
					return err
				}
				n++
				k, v = c.Seek(k) // the cursor moved on to the next key
				continue
			}
			k, v = c.Next()
		}
		return nil
	})
	return n, err
}
