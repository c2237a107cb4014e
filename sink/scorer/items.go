package scorer

import (
	"cmp"
	"math"
	"slices"

	"github.com/streamprofile/streamprofile/stream"
)

// decayed is a count that halves every half-life of event time: the value
// V as of At.
type decayed struct {
	V  float64
	At int64 // unix ms
}

func (d *decayed) add(x float64, t int64, hl float64) {
	switch {
	case d.V == 0:
		d.V, d.At = x, t
	case t >= d.At:
		d.V = d.V*math.Exp2(-float64(t-d.At)/hl) + x
		d.At = t
	default:
		d.V += x * math.Exp2(-float64(d.At-t)/hl)
	}
}

func (d decayed) at(t int64, hl float64) float64 {
	if t <= d.At {
		return d.V
	}
	return d.V * math.Exp2(-float64(t-d.At)/hl)
}

// rank orders decayed counts independently of the time they are compared
// at (all decay alike): log2 of the value as of time 0.
func (d decayed) rank(hl float64) float64 {
	if d.V <= 0 {
		return math.Inf(-1)
	}
	return math.Log2(d.V) + float64(d.At)/hl
}

type neighbour struct {
	Item string
	W    decayed
}

type watcher struct {
	User string
	At   int64
}

// itemStat is what the stream taught about one item.
type itemStat struct {
	Cat     string
	Pop     decayed // view 1, cart 3, purchase 5, review 2
	Price   float64 // last observed price (0: unknown)
	PriceAt int64
	Nb      []neighbour // co-viewed items, at most 2 × Neighbours
	Watch   []watcher   // users who viewed it at a price, most recent last
	rank    float64     // Pop.rank: orders items by popularity
}

// itemTable holds a partition's item statistics: decayed popularity,
// co-occurrence, last prices and price watchers, all bounded. It belongs
// to one processor goroutine.
type itemTable struct {
	cfg  ItemsConfig
	hl   float64 // half-life, ms
	m    map[string]*itemStat
	cats map[string][]string // category → its most popular items (unordered, bounded)
	top  []string            // most popular items overall (unordered, bounded)
	now  int64               // newest event time observed
}

// globalTop bounds itemTable.top.
const globalTop = 32

func newItemTable(cfg ItemsConfig) *itemTable {
	return &itemTable{cfg: cfg, hl: float64(cfg.HalfLife.Milliseconds()), m: map[string]*itemStat{}, cats: map[string][]string{}}
}

// eventWeight is what an event adds to its item's popularity.
func eventWeight(t stream.EventType) float64 {
	switch t {
	case stream.TypeView:
		return 1
	case stream.TypeCart:
		return 3
	case stream.TypePurchase:
		return 5
	case stream.TypeReview:
		return 2
	}
	return 0
}

// observe learns from one event of a user whose recently viewed items
// (before this event) are recent. It returns the item's previous observed
// price (0 when unknown).
func (t *itemTable) observe(item, cat string, typ stream.EventType, price float64, ts int64, recent []string) (prev float64) {
	w := eventWeight(typ)
	if item == "" || w == 0 {
		return 0
	}
	t.now = max(t.now, ts)
	st := t.m[item]
	if st == nil {
		st = &itemStat{}
		t.m[item] = st
	}
	if cat != "" {
		st.Cat = cat
	}
	st.Pop.add(w, ts, t.hl)
	st.rank = st.Pop.rank(t.hl)
	prev = st.Price
	if price > 0 && ts >= st.PriceAt {
		st.Price, st.PriceAt = price, ts
	}
	if typ == stream.TypeView {
		for _, r := range recent {
			if r != item {
				t.cooccur(st, r, ts)
				if o := t.m[r]; o != nil {
					t.cooccur(o, item, ts)
				}
			}
		}
	}
	if st.Cat != "" {
		t.cats[st.Cat] = t.promote(t.cats[st.Cat], item, st, t.cfg.PerCategory)
	}
	t.top = t.promote(t.top, item, st, globalTop)
	if len(t.m) > t.cfg.MaxItems {
		t.prune()
	}
	if len(t.cats) > t.cfg.MaxCategories {
		t.rebuildTops()
	}
	return prev
}

func (t *itemTable) cooccur(st *itemStat, other string, ts int64) {
	for i := range st.Nb {
		if st.Nb[i].Item == other {
			st.Nb[i].W.add(1, ts, t.hl)
			return
		}
	}
	st.Nb = append(st.Nb, neighbour{Item: other, W: decayed{V: 1, At: ts}})
	if len(st.Nb) > 2*t.cfg.Neighbours {
		slices.SortFunc(st.Nb, func(a, b neighbour) int {
			return cmp.Or(cmp.Compare(b.W.at(ts, t.hl), a.W.at(ts, t.hl)), cmp.Compare(a.Item, b.Item))
		})
		st.Nb = st.Nb[:t.cfg.Neighbours]
	}
}

// promote keeps item in list (bounded by limit) if it is among the most
// popular: a full list drops its least popular entry for a more popular
// item.
func (t *itemTable) promote(list []string, item string, st *itemStat, limit int) []string {
	if slices.Contains(list, item) {
		return list
	}
	if len(list) < limit {
		return append(list, item)
	}
	low, lowV := -1, math.Inf(1)
	for i, x := range list {
		v := math.Inf(-1)
		if o := t.m[x]; o != nil {
			v = o.rank
		}
		if low < 0 || v < lowV || v == lowV && x > list[low] {
			low, lowV = i, v
		}
	}
	if st.rank > lowV {
		list[low] = item
	}
	return list
}

// prune drops the least popular tenth of the items.
func (t *itemTable) prune() {
	type iv struct {
		id string
		v  float64
	}
	all := make([]iv, 0, len(t.m))
	for id, st := range t.m {
		all = append(all, iv{id, st.Pop.at(t.now, t.hl)})
	}
	slices.SortFunc(all, func(a, b iv) int { return cmp.Or(cmp.Compare(a.v, b.v), cmp.Compare(a.id, b.id)) })
	for _, x := range all[:len(all)-t.cfg.MaxItems*9/10] {
		delete(t.m, x.id)
	}
	t.rebuildTops()
}

// rebuildTops recomputes the category and global lists from the items:
// each category's most popular items, for the MaxCategories categories
// with the most popularity.
func (t *itemTable) rebuildTops() {
	type iv struct {
		id string
		v  float64
	}
	byCat := map[string][]iv{}
	all := make([]iv, 0, len(t.m))
	for id, st := range t.m {
		x := iv{id, st.Pop.at(t.now, t.hl)}
		all = append(all, x)
		if st.Cat != "" {
			byCat[st.Cat] = append(byCat[st.Cat], x)
		}
	}
	order := func(a, b iv) int { return cmp.Or(cmp.Compare(b.v, a.v), cmp.Compare(a.id, b.id)) }
	type cv struct {
		cat string
		v   float64
	}
	cats := make([]cv, 0, len(byCat))
	for c, xs := range byCat {
		s := 0.0
		for _, x := range xs {
			s += x.v
		}
		cats = append(cats, cv{c, s})
	}
	slices.SortFunc(cats, func(a, b cv) int { return cmp.Or(cmp.Compare(b.v, a.v), cmp.Compare(a.cat, b.cat)) })
	if len(cats) > t.cfg.MaxCategories*9/10 {
		cats = cats[:max(1, t.cfg.MaxCategories*9/10)]
	}
	t.cats = make(map[string][]string, len(cats))
	for _, c := range cats {
		xs := byCat[c.cat]
		slices.SortFunc(xs, order)
		ids := make([]string, 0, min(len(xs), t.cfg.PerCategory))
		for _, x := range xs[:min(len(xs), t.cfg.PerCategory)] {
			ids = append(ids, x.id)
		}
		t.cats[c.cat] = ids
	}
	slices.SortFunc(all, order)
	t.top = t.top[:0]
	for _, x := range all[:min(len(all), globalTop)] {
		t.top = append(t.top, x.id)
	}
}

// watch registers user as waiting for a drop of item's price.
func (t *itemTable) watch(item, user string, ts int64) {
	st := t.m[item]
	if st == nil {
		return
	}
	st.Watch = slices.DeleteFunc(st.Watch, func(w watcher) bool { return w.User == user })
	st.Watch = append(st.Watch, watcher{User: user, At: ts})
	if len(st.Watch) > t.cfg.Watchers {
		st.Watch = slices.Delete(st.Watch, 0, len(st.Watch)-t.cfg.Watchers)
	}
}

// unwatch removes user from item's watchers.
func (t *itemTable) unwatch(item, user string) {
	if st := t.m[item]; st != nil {
		st.Watch = slices.DeleteFunc(st.Watch, func(w watcher) bool { return w.User == user })
	}
}

// watchers returns the users waiting for a drop of item's price.
func (t *itemTable) watchers(item string) []watcher {
	if st := t.m[item]; st != nil {
		return st.Watch
	}
	return nil
}

// forget removes a user from every watcher list (erasure).
func (t *itemTable) forget(user string) {
	for _, st := range t.m {
		st.Watch = slices.DeleteFunc(st.Watch, func(w watcher) bool { return w.User == user })
	}
}

// Recommendation is one recommended item.
type Recommendation struct {
	Item     string  `json:"item_id"`
	Score    float64 `json:"score"`
	Reason   string  `json:"reason"`
	Category string  `json:"category,omitempty"`
}

// Recommendation reasons.
const (
	ReasonTrigger           = "trigger"             // the item the trigger is about (carted, browsed, cheaper)
	ReasonCoViewed          = "co_viewed"           // viewed together with the user's items
	ReasonPopularInCategory = "popular_in_category" // popular in one of the user's categories
	ReasonPopular           = "popular"             // popular overall
)

// recommend ranks items for u: first (the trigger's own items), then items
// co-viewed with first and the user's recent items, then popular items of
// the user's top categories, then popular items overall; never an item the
// user bought. It also returns the user's top categories followed by the
// recommended items' categories (at most 5).
func (t *itemTable) recommend(u *userState, first []string, n int, at int64) ([]Recommendation, []string) {
	if n <= 0 {
		return nil, nil
	}
	type cand struct {
		score  float64
		reason string
		best   float64 // the largest single contribution, which names the reason
	}
	cands := map[string]*cand{}
	add := func(item string, s float64, reason string) {
		if item == "" || s <= 0 || u.bought(item) {
			return
		}
		c := cands[item]
		if c == nil {
			c = &cand{}
			cands[item] = c
		}
		c.score += s
		if s > c.best {
			c.best, c.reason = s, reason
		}
	}
	for i, it := range first {
		add(it, 4-float64(i)/float64(len(first)+1), ReasonTrigger)
	}
	seeds := slices.Concat(first, u.Recent, u.Browse, u.Cart)
	for _, s := range seeds {
		st := t.m[s]
		if st == nil || len(st.Nb) == 0 {
			continue
		}
		top := 0.0
		for _, nb := range st.Nb {
			top = max(top, nb.W.at(at, t.hl))
		}
		for _, nb := range st.Nb {
			add(nb.Item, nb.W.at(at, t.hl)/top, ReasonCoViewed)
		}
	}
	popular := func(list []string, weight float64, reason string) {
		top := 0.0
		for _, x := range list {
			if st := t.m[x]; st != nil {
				top = max(top, st.Pop.at(at, t.hl))
			}
		}
		if top == 0 {
			return
		}
		for _, x := range list {
			if st := t.m[x]; st != nil {
				add(x, weight*st.Pop.at(at, t.hl)/top, reason)
			}
		}
	}
	userCats := u.Tokens[0] // features.Dims[0] is the full category
	for r, c := range userCats {
		popular(t.cats[c], 0.5/float64(r+1), ReasonPopularInCategory)
	}
	popular(t.top, 0.1, ReasonPopular)

	ids := make([]string, 0, len(cands))
	for id := range cands {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		return cmp.Or(cmp.Compare(cands[b].score, cands[a].score), cmp.Compare(a, b))
	})
	recs := make([]Recommendation, 0, min(n, len(ids)))
	cats := make([]string, 0, 5)
	for _, c := range userCats {
		if len(cats) < 3 && !slices.Contains(cats, c) {
			cats = append(cats, c)
		}
	}
	for _, id := range ids[:min(n, len(ids))] {
		r := Recommendation{Item: id, Score: math.Round(cands[id].score*1e4) / 1e4, Reason: cands[id].reason}
		if st := t.m[id]; st != nil {
			r.Category = st.Cat
			if st.Cat != "" && len(cats) < 5 && !slices.Contains(cats, st.Cat) {
				cats = append(cats, st.Cat)
			}
		}
		recs = append(recs, r)
	}
	return recs, cats
}

// itemsFormat is the version byte of the item table encoding. Format 2
// added the category and global popular lists, so that a restored table
// goes on exactly as the saved one would have (they are kept incrementally,
// and rebuilding them from the items can give other lists); format 1
// tables still decode, with the lists rebuilt.
const (
	itemsFormat   = 2
	itemsFormatV1 = 1
)

// maxItemsBytes bounds an encoded item table (far above what the largest
// configuration writes).
const maxItemsBytes = 1 << 30

// marshal encodes the table with a string table for item, category and
// user names.
func (t *itemTable) marshal() []byte {
	idx := map[string]uint64{}
	var strs []string
	ref := func(s string) uint64 {
		if i, ok := idx[s]; ok {
			return i
		}
		idx[s] = uint64(len(strs))
		strs = append(strs, s)
		return uint64(len(strs) - 1)
	}
	ids := make([]string, 0, len(t.m))
	for id := range t.m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	body := enc{}
	body.uv(uint64(len(ids)))
	for _, id := range ids {
		st := t.m[id]
		body.uv(ref(id))
		body.uv(ref(st.Cat))
		body.f64(st.Pop.V)
		body.v(st.Pop.At)
		body.f64(st.Price)
		body.v(st.PriceAt)
		body.uv(uint64(len(st.Nb)))
		for _, nb := range st.Nb {
			body.uv(ref(nb.Item))
			body.f64(nb.W.V)
			body.v(nb.W.At)
		}
		body.uv(uint64(len(st.Watch)))
		for _, w := range st.Watch {
			body.uv(ref(w.User))
			body.v(w.At)
		}
	}
	cats := make([]string, 0, len(t.cats))
	for c := range t.cats {
		cats = append(cats, c)
	}
	slices.Sort(cats)
	body.uv(uint64(len(cats)))
	for _, c := range cats {
		body.uv(ref(c))
		body.uv(uint64(len(t.cats[c])))
		for _, id := range t.cats[c] {
			body.uv(ref(id))
		}
	}
	body.uv(uint64(len(t.top)))
	for _, id := range t.top {
		body.uv(ref(id))
	}
	e := enc{b: make([]byte, 0, len(body.b)+16*len(strs)+16)}
	e.byte1(itemsFormat)
	e.v(t.now)
	e.strs(strs)
	e.b = append(e.b, body.b...)
	return e.b
}

// unmarshal replaces the table with the decoded one; on error the table is
// left empty.
func (t *itemTable) unmarshal(b []byte) error {
	fresh := newItemTable(t.cfg)
	*t = *fresh
	if len(b) == 0 {
		return nil
	}
	d := dec{b: b}
	format := d.byte1()
	if format != itemsFormat && format != itemsFormatV1 {
		d.fail("unknown item table format")
		return d.err
	}
	if len(b) > maxItemsBytes {
		d.fail("item table too large")
		return d.err
	}
	t.now = d.v()
	strs := d.strs(maxDecodedList)
	str := func() string {
		i := d.uv()
		if i >= uint64(len(strs)) {
			d.fail("string index out of range")
			return ""
		}
		return strs[i]
	}
	n := d.n(maxDecodedList)
	for i := 0; i < n && d.err == nil; i++ {
		id := str()
		st := &itemStat{Cat: str()}
		st.Pop = decayed{V: d.finite(d.f64(), "popularity"), At: d.v()}
		st.rank = st.Pop.rank(t.hl)
		st.Price, st.PriceAt = d.finite(d.f64(), "price"), d.v()
		nn := d.n(2 * 64)
		for j := 0; j < nn && d.err == nil; j++ {
			st.Nb = append(st.Nb, neighbour{Item: str(), W: decayed{V: d.finite(d.f64(), "weight"), At: d.v()}})
		}
		nw := d.n(64)
		for j := 0; j < nw && d.err == nil; j++ {
			st.Watch = append(st.Watch, watcher{User: str(), At: d.v()})
		}
		t.m[id] = st
	}
	rebuild := format == itemsFormatV1
	if !rebuild {
		nc := d.n(maxDecodedList)
		for i := 0; i < nc && d.err == nil; i++ {
			c := str()
			k := d.n(maxDecodedList)
			list := make([]string, 0, min(k, t.cfg.PerCategory))
			for j := 0; j < k && d.err == nil; j++ {
				list = append(list, str())
			}
			t.cats[c] = list
			rebuild = rebuild || k > t.cfg.PerCategory
		}
		k := d.n(maxDecodedList)
		for j := 0; j < k && d.err == nil; j++ {
			t.top = append(t.top, str())
		}
		// Lists beyond this configuration's bounds (it changed since the
		// save) are rebuilt.
		rebuild = rebuild || nc > t.cfg.MaxCategories || k > globalTop
	}
	if err := d.end(); err != nil {
		*t = *newItemTable(t.cfg)
		return err
	}
	if rebuild {
		t.rebuildTops()
	}
	return nil
}
