package broker

import (
	"slices"
	"strconv"

	"github.com/majordomo-go/majordomo/mdp"
)

// MMI reply codes (8/MMI "Default services"; 400 is ours, see docs/mmi.md).
var (
	code200 = []byte("200")
	code404 = []byte("404")
	code501 = []byte("501")
)

// mmi answers a request for an mmi.* service itself, in the client's own
// protocol version. The formats are documented in docs/mmi.md.
func (b *Broker) mmi(sender []byte, m *mdp.Message) {
	var body [][]byte
	switch string(m.Service) {
	case "mmi.service":
		// 8/MMI: "200" if at least one worker is registered for the
		// service, idle or busy; "404" if there is none.
		body = [][]byte{code404}
		if q := b.pool.QueueBytes(m.Body[0]); q != nil && q.Members() > 0 && b.mayView(q.Name()) {
			body[0] = code200
		}
	case "mmi.services":
		names := make([]string, 0, b.pool.Len())
		b.pool.Range(func(q *queue) bool {
			if q.Members() > 0 && b.mayView(q.Name()) {
				names = append(names, q.Name())
			}
			return true
		})
		slices.Sort(names)
		body = make([][]byte, 0, len(names)+1)
		body = append(body, code200)
		for _, n := range names {
			body = append(body, []byte(n))
		}
	case "mmi.workers":
		q := b.pool.QueueBytes(m.Body[0])
		if q == nil || (q.Members() == 0 && q.Len() == 0) || !b.mayView(q.Name()) {
			body = [][]byte{code404}
			break
		}
		body = [][]byte{code200,
			[]byte(strconv.Itoa(q.Ready())),
			[]byte(strconv.Itoa(q.Members() - q.Ready())),
			[]byte(strconv.Itoa(q.Len())),
		}
	default:
		// 8/MMI: "Any unimplemented services in the "mmi." namespace MUST
		// result in a reply "501"."
		body = [][]byte{code501}
	}
	msg := mdp.Message{Version: m.Version, Role: mdp.RoleClient, Command: mdp.Final,
		Service: m.Service, Body: body, Delimited: m.Delimited}
	if ok, _ := b.sendClient(sender, &msg); ok {
		b.stats.Replies++
	}
}
