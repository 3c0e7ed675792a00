// Command hello-http is the example http-mode function: a static Go HTTP
// server on $PORT (8080) that greets whoever posts their name.
package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		name := strings.TrimSpace(string(body))
		if name == "" {
			name = "world"
		}
		fmt.Fprintf(w, "Hello, %s! (call %s, trigger %s)\n", name, r.Header.Get("X-Call-Id"), r.Header.Get("X-Faas-Trigger"))
	})
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
