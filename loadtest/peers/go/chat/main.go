// The Go twin of coronet-chat's line protocol over TCP (no WebSocket: Go's
// standard library has none): the same commands, lines and limits. Each
// client has a buffered outbox channel and a writer goroutine; each room is
// a goroutine reading its inbox channel and fanning lines out without
// blocking; a client whose outbox is full is disconnected with a reason.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"net"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

var (
	outboxSize    = flag.Int("outbox", 256, "lines waiting for a client; when full, it is disconnected")
	ratePerSecond = flag.Float64("rate", 20, "messages per second per client")
	maxLine       = flag.Int("max-line", 4096, "longest line")
	announceLimit = flag.Int("announce-limit", 100, "rooms bigger than this tell only the one who joins or leaves")
	idleTimeout   = flag.Duration("idle", 300*time.Second, "disconnect a client silent this long")
	writeTimeout  = flag.Duration("write-timeout", 10*time.Second, "disconnect a client that takes nothing this long")
)

type client struct {
	id       uint64
	outbox   chan string
	once     sync.Once
	done     chan struct{}
	farewell string
	dropRest bool
}

func (c *client) deliver(line string) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case c.outbox <- line:
		return true
	default:
		return false
	}
}

func (c *client) end(farewell string, dropRest bool) bool {
	ended := false
	c.once.Do(func() {
		c.farewell = farewell
		c.dropRest = dropRest
		close(c.done)
		ended = true
	})
	return ended
}

type event struct {
	kind  string // join, leave, rename, say, who
	from  *client
	nick  string
	text  string
	reply chan string
}

type member struct {
	c    *client
	nick string
}

type room struct {
	name    string
	inbox   chan event
	members int // guarded by hub.mu
}

func (r *room) broadcast(members []member, line string) []member {
	var dropped []string
	for i := 0; i < len(members); {
		if members[i].c.deliver(line) {
			i++
			continue
		}
		if members[i].c.end(fmt.Sprintf("error: too slow: %d messages waiting, disconnected", *outboxSize), true) {
			log.Printf("client %d (%s) too slow, disconnected", members[i].c.id, members[i].nick)
		}
		dropped = append(dropped, members[i].nick)
		members[i] = members[len(members)-1]
		members = members[:len(members)-1]
	}
	if len(members) < *announceLimit {
		for _, nick := range dropped {
			members = r.broadcast(members, fmt.Sprintf("* %s left %s (too slow)", nick, r.name))
		}
	}
	return members
}

func (r *room) run() {
	var members []member
	find := func(c *client) int {
		for i := range members {
			if members[i].c == c {
				return i
			}
		}
		return -1
	}
	for e := range r.inbox {
		switch e.kind {
		case "join":
			members = append(members, member{e.from, e.nick})
			notice := fmt.Sprintf("* %s joined %s", e.nick, r.name)
			if len(members) <= *announceLimit {
				members = r.broadcast(members, notice)
			} else {
				e.from.deliver(notice)
			}
		case "leave":
			if i := find(e.from); i >= 0 {
				members[i] = members[len(members)-1]
				members = members[:len(members)-1]
				if len(members) < *announceLimit {
					members = r.broadcast(members, fmt.Sprintf("* %s left %s", e.nick, r.name))
				}
			}
			e.reply <- "" // what came before is delivered
		case "rename":
			if i := find(e.from); i >= 0 {
				old := members[i].nick
				members[i].nick = e.nick
				members = r.broadcast(members, fmt.Sprintf("* %s is now %s", old, e.nick))
			}
		case "say":
			members = r.broadcast(members, e.text)
		case "who":
			nicks := make([]string, 0, len(members))
			for _, m := range members {
				nicks = append(nicks, m.nick)
			}
			sort.Strings(nicks)
			text := fmt.Sprintf("* %d in %s: ", len(members), r.name)
			if len(nicks) > 100 {
				text += strings.Join(nicks[:100], ", ") + fmt.Sprintf(" and %d more", len(nicks)-100)
			} else {
				text += strings.Join(nicks, ", ")
			}
			e.reply <- text
		}
	}
}

type hub struct {
	mu     sync.Mutex
	nextID uint64
	rooms  map[string]*room
	nicks  map[string]bool
}

func (h *hub) enter(name string) *room {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[name]
	if r == nil {
		r = &room{name: name, inbox: make(chan event, 1024)}
		h.rooms[name] = r
		go r.run()
	}
	r.members++
	return r
}

func (h *hub) leave(r *room) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.members--
	if r.members == 0 {
		delete(h.rooms, r.name)
		close(r.inbox)
	}
}

func (h *hub) claimNick(nick, old string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.nicks[nick] {
		return false
	}
	h.nicks[nick] = true
	if old != "" {
		delete(h.nicks, old)
	}
	return true
}

func (h *hub) releaseNick(nick string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.nicks, nick)
}

func (h *hub) listRooms() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.rooms) == 0 {
		return "* no rooms yet: /join ROOM makes one"
	}
	names := make([]string, 0, len(h.rooms))
	for n := range h.rooms {
		names = append(names, n)
	}
	sort.Strings(names)
	text := "* rooms:"
	for _, n := range names {
		text += fmt.Sprintf(" %s (%d)", n, h.rooms[n].members)
	}
	return text
}

func validName(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func writer(conn net.Conn, c *client, finished chan struct{}) {
	defer close(finished)
	w := bufio.NewWriterSize(conn, 16*1024)
	failed := false
	write := func() {
		conn.SetWriteDeadline(time.Now().Add(*writeTimeout))
		if err := w.Flush(); err != nil {
			failed = true
			c.end("", true)
		}
	}
	for {
		select {
		case line := <-c.outbox:
			if failed {
				continue
			}
			w.WriteString(line)
			w.WriteByte('\n')
			takeQueued(w, c, 16*1024)
			write()
		case <-c.done:
			if !c.dropRest && !failed {
				takeQueued(w, c, -1)
			}
			if !failed && c.farewell != "" {
				w.WriteString(c.farewell)
				w.WriteByte('\n')
				write()
			} else if !failed {
				write()
			}
			conn.(*net.TCPConn).CloseRead()
			conn.Close()
			return
		}
	}
}

// takeQueued moves the lines already in the outbox into w, while w holds
// fewer than limit bytes (no limit when limit < 0).
func takeQueued(w *bufio.Writer, c *client, limit int) {
	for limit < 0 || w.Buffered() < limit {
		select {
		case l := <-c.outbox:
			w.WriteString(l)
			w.WriteByte('\n')
		default:
			return
		}
	}
}

func serve(h *hub, conn net.Conn) {
	h.mu.Lock()
	h.nextID++
	c := &client{id: h.nextID, outbox: make(chan string, *outboxSize), done: make(chan struct{})}
	h.mu.Unlock()
	finished := make(chan struct{})
	go writer(conn, c, finished)
	reply := func(s string) { c.deliver(s) }
	reply("* welcome to coronet-chat. Commands: /nick NAME, /join ROOM, /rooms, /who, /quit")

	var nick string
	var current *room
	tokens, refilled := *ratePerSecond, time.Now()
	leaveRoom := func() {
		if current != nil {
			done := make(chan string, 1)
			current.inbox <- event{kind: "leave", from: c, nick: nick, reply: done}
			<-done
			h.leave(current)
			current = nil
		}
	}
	r := bufio.NewReaderSize(conn, 4096)
	quit := false
	for !quit {
		conn.SetReadDeadline(time.Now().Add(*idleTimeout))
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull || len(line) > *maxLine+2 {
			reply(fmt.Sprintf("error: line too long (at most %d bytes)", *maxLine))
			for err == bufio.ErrBufferFull {
				_, err = r.ReadSlice('\n')
			}
			if err != nil {
				break
			}
			continue
		}
		if err != nil {
			break
		}
		text := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
		if len(text) > *maxLine {
			reply(fmt.Sprintf("error: line too long (at most %d bytes)", *maxLine))
			continue
		}
		if !utf8.ValidString(text) {
			reply("error: not valid UTF-8")
			continue
		}
		if text == "" {
			continue
		}
		now := time.Now()
		tokens += now.Sub(refilled).Seconds() * *ratePerSecond
		if tokens > *ratePerSecond {
			tokens = *ratePerSecond
		}
		refilled = now
		if tokens < 1 {
			reply(fmt.Sprintf("error: too many messages (at most %g per second), dropped", *ratePerSecond))
			continue
		}
		tokens--
		if text[0] != '/' {
			if current == nil {
				if nick == "" {
					reply("error: pick a nick with /nick NAME, then /join ROOM")
				} else {
					reply("error: join a room first: /join ROOM")
				}
				continue
			}
			current.inbox <- event{kind: "say", text: fmt.Sprintf("[%s] %s: %s", current.name, nick, text)}
			continue
		}
		command, arg, _ := strings.Cut(text, " ")
		arg = strings.TrimSpace(arg)
		switch command {
		case "/nick":
			if !validName(arg, 32) {
				reply("error: a nick is 1 to 32 letters, digits, '_', '-' or '.'")
			} else if arg != nick {
				if !h.claimNick(arg, nick) {
					reply(fmt.Sprintf("error: nick %s is taken", arg))
				} else {
					nick = arg
					if current != nil {
						current.inbox <- event{kind: "rename", from: c, nick: nick}
					} else {
						reply("* you are " + nick)
					}
				}
			}
		case "/join":
			if nick == "" {
				reply("error: pick a nick first: /nick NAME")
			} else if !validName(arg, 64) {
				reply("error: a room name is 1 to 64 letters, digits, '_', '-' or '.'")
			} else if current == nil || current.name != arg {
				leaveRoom()
				current = h.enter(arg)
				current.inbox <- event{kind: "join", from: c, nick: nick}
			}
		case "/rooms":
			reply(h.listRooms())
		case "/who":
			if current == nil {
				reply("error: join a room first: /join ROOM")
			} else {
				answer := make(chan string, 1)
				current.inbox <- event{kind: "who", from: c, reply: answer}
				reply(<-answer)
			}
		case "/quit":
			quit = true
		default:
			reply(fmt.Sprintf("error: unknown command %s (try /nick, /join, /rooms, /who, /quit)", command))
		}
	}
	leaveRoom()
	if nick != "" {
		h.releaseNick(nick)
	}
	if quit {
		c.end("* bye", false)
	} else {
		c.end("", false)
	}
	<-finished
}

func main() {
	listen := flag.String("listen", "127.0.0.1:7071", "address for the line protocol")
	flag.Parse()
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on %s", l.Addr())
	h := &hub{rooms: map[string]*room{}, nicks: map[string]bool{}}
	for {
		conn, err := l.Accept()
		if err != nil {
			log.Printf("accept: %v", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go serve(h, conn)
	}
}
