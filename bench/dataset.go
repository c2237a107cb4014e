package bench

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

// CopyShift is how far in event time each copy of the sample is shifted
// from the previous one: more than the sample's span (2h50m), so copies
// follow each other without overlap.
const CopyShift = 3 * time.Hour

// Sample is a dataset to re-key: events in time order, each with the index
// of its user in order of first appearance.
type Sample struct {
	events []stream.Event
	user   []int // user index of events[i]
	counts []int // events per user index
	span   time.Duration
}

// LoadSample reads the bundled REES46 sample.
func LoadSample() (*Sample, error) {
	r, c, err := source.Open(source.REES46, source.EmbeddedPrefix+data.REES46Sample)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var evs []stream.Event
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *source.LineError
		if errors.As(err, &le) {
			continue
		}
		if err != nil {
			return nil, err
		}
		evs = append(evs, rec.Event)
	}
	return NewSample(evs)
}

// NewSample returns a sample of evs, which must be in non-decreasing event
// time order and span less than CopyShift.
func NewSample(evs []stream.Event) (*Sample, error) {
	if len(evs) == 0 {
		return nil, fmt.Errorf("%w: no events", ErrSample)
	}
	s := &Sample{events: evs, user: make([]int, len(evs))}
	idx := map[string]int{}
	for i := range evs {
		if i > 0 && evs[i].TS.Before(evs[i-1].TS) {
			return nil, fmt.Errorf("%w: event %d is earlier than the one before", ErrSample, i)
		}
		k := evs[i].ProfileKey()
		u, ok := idx[k]
		if !ok {
			u = len(idx)
			idx[k] = u
			s.counts = append(s.counts, 0)
		}
		s.user[i] = u
		s.counts[u]++
	}
	s.span = evs[len(evs)-1].TS.Sub(evs[0].TS)
	if s.span >= CopyShift {
		return nil, fmt.Errorf("%w: spans %s, more than the copy shift %s", ErrSample, s.span, CopyShift)
	}
	return s, nil
}

// Users is the number of distinct users in the sample.
func (s *Sample) Users() int { return len(s.counts) }

// Events is the number of events in the sample.
func (s *Sample) Events() int { return len(s.events) }

// RepricedItems is the number of items the sample shows at more than one
// price. Rekey keeps every event's item and price, so when it is 0 no
// re-keyed stream ever shows an item at a lower price than before, and the
// score role's price_drop trigger (the only default trigger an event
// causes; the others fire from timers) never fires.
func (s *Sample) RepricedItems() int {
	price := map[string]int64{}
	repriced := map[string]bool{}
	for i := range s.events {
		e := &s.events[i]
		if e.ItemID == "" || e.PriceMicros <= 0 {
			continue
		}
		if p, ok := price[e.ItemID]; !ok {
			price[e.ItemID] = e.PriceMicros
		} else if p != e.PriceMicros {
			repriced[e.ItemID] = true
		}
	}
	return len(repriced)
}

// Rekey returns the stream of exactly users distinct synthetic users (see
// the package documentation), starting at round.
func (s *Sample) Rekey(users, round int) (*Rekeyed, error) {
	if users < 1 {
		return nil, fmt.Errorf("%w: %d users", ErrSample, users)
	}
	if round < 0 {
		return nil, fmt.Errorf("%w: round %d", ErrSample, round)
	}
	copies := (users + s.Users() - 1) / s.Users()
	r := &Rekeyed{s: s, users: users, copies: copies, round: round}
	full := copies - 1
	r.perRound = full * len(s.events)
	last := users - full*s.Users()
	for u := 0; u < last; u++ {
		r.perRound += s.counts[u]
	}
	r.settle()
	return r, nil
}

// Rekeyed yields a re-keyed stream, one round after the other, forever.
type Rekeyed struct {
	s        *Sample
	users    int
	copies   int
	perRound int
	round    int
	copy     int
	pos      int
}

// Copies is the number of copies of the sample in one round.
func (r *Rekeyed) Copies() int { return r.copies }

// PerRound is the number of events in one round (every user once).
func (r *Rekeyed) PerRound() int { return r.perRound }

// Users is the number of distinct users.
func (r *Rekeyed) Users() int { return r.users }

// Round is the round the next event belongs to.
func (r *Rekeyed) Round() int { return r.round }

// settle moves the position to the next event that belongs to the stream:
// past the end of a copy, and past the users the last copy leaves out.
func (r *Rekeyed) settle() {
	s := r.s
	for {
		if r.pos == len(s.events) {
			r.pos = 0
			r.copy++
			if r.copy == r.copies {
				r.copy = 0
				r.round++
			}
		}
		if r.copy*s.Users()+s.user[r.pos] < r.users {
			return
		}
		r.pos++
	}
}

// Next returns the next event.
func (r *Rekeyed) Next() stream.Event {
	ev := r.s.events[r.pos]
	n := r.round*r.copies + r.copy
	suffix := "-" + strconv.Itoa(r.copy)
	if ev.UserID != "" {
		ev.UserID += suffix
	}
	if ev.AnonymousID != "" {
		ev.AnonymousID += suffix
	}
	if ev.SessionID != "" {
		ev.SessionID += "/" + strconv.Itoa(n)
	}
	ev.EventID += "/" + strconv.Itoa(n)
	ev.TS = ev.TS.Add(time.Duration(n) * CopyShift)
	r.pos++
	r.settle()
	return ev
}
