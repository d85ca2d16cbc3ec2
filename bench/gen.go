package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"time"
)

// The synthetic data set is a pure function of the profile number, so the
// benchmark knows every profile's segment memberships without asking
// segsync, and can compute the minimal number of calls a plan needs.

var (
	firstNames = []string{"Anna", "Bram", "Carla", "Daan", "Eva", "Finn", "Greta", "Hugo", "Iris", "Joost", "Kim", "Lars"}
	lastNames  = []string{"de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "Mulder", "Bos", "Peters", "Hendriks"}
	cities     = []string{"Amsterdam", "Rotterdam", "Utrecht", "Eindhoven", "Groningen", "Tilburg", "Almere", "Breda"}
	epoch      = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
)

// csvHeader is the header of the generated CSV.
const csvHeader = "customer_id,email,first_name,last_name,score,signup_date,city,vip,orders\n"

// Segment thresholds: "engaged" is score >= engagedMin, "recent" is
// signup_date >= recentFrom.
const (
	engagedMin = 25
	recentFrom = "2022-01-01"
	signupDays = 1500
)

var recentDay = int(mustDate(recentFrom).Sub(epoch).Hours() / 24)

func mustDate(s string) time.Time {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return t
}

// profile is one generated profile at a given change generation.
type profile struct {
	i         int
	lastName  string
	score     int
	signupDay int
}

// gen returns profile i as of change generation g (0: as first imported).
// Generation g changes the profiles with i%100 == g-1 (1% each): a new last
// name for all of them, and for every second one a score that moves it
// across the "engaged" threshold.
func gen(i, g int) profile {
	h := mix(uint64(i))
	p := profile{i: i, lastName: lastNames[(i/7)%len(lastNames)], score: int(h % 100), signupDay: int((h >> 20) % signupDays)}
	for k := 1; k <= g; k++ {
		if changed(i, k) {
			p.lastName = fmt.Sprintf("Changed%d %s", k, p.lastName)
			if (i/100)%2 == 0 {
				if p.score >= engagedMin {
					p.score = p.score % engagedMin
				} else {
					p.score += 50
				}
			}
		}
	}
	return p
}

// mix is SplitMix64's finaliser: well-spread attribute values that are a
// pure function of the profile number.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// changeEvery is how many profiles share one that a generation changes
// (-change-every; 100: 1 %).
var changeEvery = 100

// changed reports whether generation k changes profile i.
func changed(i, k int) bool { return k > 0 && i%changeEvery == (k-1)%changeEvery }

func (p profile) engaged() bool { return p.score >= engagedMin }
func (p profile) recent() bool  { return p.signupDay >= recentDay }

// tags returns the profile's segment bits: 1 engaged, 2 recent.
func (p profile) tags() int {
	t := 0
	if p.engaged() {
		t |= 1
	}
	if p.recent() {
		t |= 2
	}
	return t
}

func email(i int) string { return "member" + strconv.Itoa(i) + "@segsync-bench.net" }

// appendCSV appends profile p's CSV row.
func (p profile) appendCSV(b []byte) []byte {
	i := p.i
	b = append(b, 'c')
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, ',')
	b = append(b, email(i)...)
	b = append(b, ',')
	b = append(b, firstNames[i%len(firstNames)]...)
	b = append(b, ',')
	b = append(b, p.lastName...)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(p.score), 10)
	b = append(b, ',')
	b = epoch.AddDate(0, 0, p.signupDay).AppendFormat(b, "2006-01-02")
	b = append(b, ',')
	b = append(b, cities[(i/3)%len(cities)]...)
	b = append(b, ',')
	b = strconv.AppendBool(b, i%10 == 0)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(i%37), 10)
	return append(b, '\n')
}

// writeCSV writes the profiles of generation g for which keep returns true
// (all when keep is nil) as CSV, header first.
func writeCSV(w io.Writer, n, g int, keep func(i int) bool) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	if _, err := bw.WriteString(csvHeader); err != nil {
		return err
	}
	var row []byte
	for i := range n {
		if keep != nil && !keep(i) {
			continue
		}
		row = gen(i, g).appendCSV(row[:0])
		if _, err := bw.Write(row); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// batch is Mailchimp's limit of members per batch subscribe and of
// additions (and, separately, removals) per static segment call.
const batch = 500

func calls(n int) int { return (n + batch - 1) / batch }

// plan is what a run has to do and the fewest write calls the batch limits
// allow for it.
type plan struct {
	Creates    int    `json:"creates"`
	Updates    int    `json:"updates"`
	TagAdds    [2]int `json:"tag_adds"`
	TagRemoves [2]int `json:"tag_removes"`
	MinCalls   int    `json:"min_write_calls"`
}

// minSeconds is the least time the plan's write calls take with conns
// connections, each call costing latency plus perMember for every contact
// it carries (the emulator's model: batch subscribes and tag batches).
func (p plan) minSeconds(latency, perMember time.Duration, conns int) float64 {
	members := p.Creates + p.Updates + p.TagAdds[0] + p.TagAdds[1] + p.TagRemoves[0] + p.TagRemoves[1]
	total := time.Duration(p.MinCalls)*latency + time.Duration(members)*perMember
	return total.Seconds() / float64(conns)
}

// planFull is the plan of a first run over n profiles: every profile in
// either segment is created (batch subscribe) and tagged (static segment
// additions), plus the creation of the two static segments (tags).
func planFull(n int) plan {
	var p plan
	for i := range n {
		t := gen(i, 0).tags()
		if t == 0 {
			continue
		}
		p.Creates++
		for b := range 2 {
			if t&(1<<b) != 0 {
				p.TagAdds[b]++
			}
		}
	}
	p.MinCalls = calls(p.Creates) + calls(p.TagAdds[0]) + calls(p.TagAdds[1]) + 2
	return p
}

// planChange is the plan of the run after generation g changed one profile
// in changeEvery (on_leave untag: a contact that leaves only loses its
// tags).
// Creates and field updates go in batch subscribes of their own: a create
// is sent with update_existing false, so that it cannot re-subscribe a
// member it did not know of, and an update with true. Additions and
// removals of one tag share a call. The minimum assumes both.
func planChange(n, g int) plan {
	var p plan
	for i := range n {
		if !changed(i, g) {
			continue
		}
		before, after := gen(i, g-1), gen(i, g)
		tb, ta := before.tags(), after.tags()
		switch {
		case ta != 0 && tb == 0:
			p.Creates++
		case ta != 0:
			p.Updates++ // the last name changed
		}
		for b := range 2 {
			bit := 1 << b
			if ta&bit != 0 && tb&bit == 0 {
				p.TagAdds[b]++
			}
			if tb&bit != 0 && ta&bit == 0 {
				p.TagRemoves[b]++
			}
		}
	}
	p.MinCalls = calls(p.Creates) + calls(p.Updates)
	for b := range 2 {
		p.MinCalls += max(calls(p.TagAdds[b]), calls(p.TagRemoves[b]))
	}
	return p
}
