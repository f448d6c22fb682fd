// The Go peer of coronet-techempower: the same routes and SQL on
// database/sql with pgx (Debian's golang-github-jackc-pgx-v4-dev), built in
// GOPATH mode against Debian's copy.
//
//	go-techempower -listen 127.0.0.1:8080 -url postgres://... -pool 16
package main

import (
	"database/sql"
	"encoding/json"
	"flag"
	"html/template"
	"log"
	"math/rand"
	"net/http"
	"sort"
	"strconv"

	"github.com/jackc/pgx/v4"
	"github.com/jackc/pgx/v4/stdlib"
)

type World struct {
	ID           int32 `json:"id"`
	RandomNumber int32 `json:"randomNumber"`
}

type Fortune struct {
	ID      int32
	Message string
}

var fortunesPage = template.Must(template.New("fortunes").Parse(
	`<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>` +
		`{{range .}}<tr><td>{{.ID}}</td><td>{{.Message}}</td></tr>{{end}}</table></body></html>`))

var db *sql.DB
var selectWorld *sql.Stmt

func count(r *http.Request, name string) int {
	n, err := strconv.Atoi(r.URL.Query().Get(name))
	if err != nil || n < 1 {
		return 1
	}
	if n > 500 {
		return 500
	}
	return n
}

type byID struct{ ids, numbers []int32 }

func (b byID) Len() int           { return len(b.ids) }
func (b byID) Less(i, j int) bool { return b.ids[i] < b.ids[j] }
func (b byID) Swap(i, j int) {
	b.ids[i], b.ids[j] = b.ids[j], b.ids[i]
	b.numbers[i], b.numbers[j] = b.numbers[j], b.numbers[i]
}

func randomID() int32 { return int32(rand.Intn(10000) + 1) }

func writeJSON(w http.ResponseWriter, v interface{}) {
	w.Header().Set("Server", "go")
	w.Header().Set("Content-Type", "application/json")
	b, _ := json.Marshal(v)
	w.Write(b)
}

func fail(w http.ResponseWriter, err error) {
	log.Print(err)
	http.Error(w, "database error", http.StatusServiceUnavailable)
}

func worlds(n int) ([]World, error) {
	rows := make([]World, n)
	for i := range rows {
		if err := selectWorld.QueryRow(randomID()).Scan(&rows[i].ID, &rows[i].RandomNumber); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "HOST:PORT")
	url := flag.String("url", "", "PostgreSQL URL")
	pool := flag.Int("pool", 16, "connections")
	flag.Parse()
	config, err := pgx.ParseConfig(*url)
	if err != nil {
		log.Fatal(err)
	}
	db = stdlib.OpenDB(*config)
	db.SetMaxOpenConns(*pool)
	db.SetMaxIdleConns(*pool)
	if selectWorld, err = db.Prepare("SELECT id, randomNumber FROM World WHERE id = $1"); err != nil {
		log.Fatal(err)
	}
	http.HandleFunc("/db", func(w http.ResponseWriter, r *http.Request) {
		rows, err := worlds(1)
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, rows[0])
	})
	http.HandleFunc("/queries", func(w http.ResponseWriter, r *http.Request) {
		rows, err := worlds(count(r, "queries"))
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, rows)
	})
	http.HandleFunc("/updates", func(w http.ResponseWriter, r *http.Request) {
		rows, err := worlds(count(r, "queries"))
		if err != nil {
			fail(w, err)
			return
		}
		ids := make([]int32, 0, len(rows))
		numbers := make([]int32, 0, len(rows))
		first := map[int32]int32{}
		for i := range rows {
			if n, seen := first[rows[i].ID]; seen {
				rows[i].RandomNumber = n
				continue
			}
			rows[i].RandomNumber = randomID()
			first[rows[i].ID] = rows[i].RandomNumber
			ids = append(ids, rows[i].ID)
			numbers = append(numbers, rows[i].RandomNumber)
		}
		// Rows locked in id order, as coronet does (no deadlocks between requests).
		sort.Sort(byID{ids, numbers})
		if _, err := db.Exec("UPDATE World SET randomNumber = u.n FROM unnest($1::int[], $2::int[]) AS u(id, n) "+
			"WHERE World.id = u.id", ids, numbers); err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, rows)
	})
	http.HandleFunc("/fortunes", func(w http.ResponseWriter, r *http.Request) {
		rows, err := db.Query("SELECT id, message FROM Fortune")
		if err != nil {
			fail(w, err)
			return
		}
		fortunes := []Fortune{}
		for rows.Next() {
			var f Fortune
			if err := rows.Scan(&f.ID, &f.Message); err != nil {
				fail(w, err)
				return
			}
			fortunes = append(fortunes, f)
		}
		rows.Close()
		fortunes = append(fortunes, Fortune{0, "Additional fortune added at request time."})
		sort.Slice(fortunes, func(i, j int) bool { return fortunes[i].Message < fortunes[j].Message })
		w.Header().Set("Server", "go")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fortunesPage.Execute(w, fortunes)
	})
	log.Printf("listening on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, nil))
}
