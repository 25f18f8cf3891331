// Command gobench times the official twilio-go RequestValidator and this project's twiliosig binding on
// one webhook, in batches that bench/run.py asks for.
//
//	gobench <twilio-go|twiliosig|twiliosig-oneshot> <fixture.json>
//	gobench allocs <fixture.json>
//
// In the first form it prints "ready" once the fixture verifies (and a tampered copy does not), then for
// every line "N" on standard input runs N verifications and prints the elapsed nanoseconds (measured
// here, in-process). The second form prints heap allocations per call (testing.AllocsPerRun).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	twiliosig "github.com/twilio-signature/twilio-signature/bindings-go"
	"github.com/twilio/twilio-go/client"
)

type fixture struct {
	Token     string      `json:"token"`
	URL       string      `json:"url"`
	Body      string      `json:"body"`
	Signature string      `json:"signature"`
	Params    [][2]string `json:"params"`
}

// contenders returns one verification per contender, each reporting whether the request is valid.
func contenders(f fixture) (map[string]func(body []byte, params map[string]string) bool, error) {
	official := client.NewRequestValidator(f.Token)
	validator, err := twiliosig.NewValidator(twiliosig.Secret{Value: []byte(f.Token)})
	if err != nil {
		return nil, err
	}
	secret := []byte(f.Token)
	return map[string]func([]byte, map[string]string) bool{
		// twilio-go takes the parsed form, as net/http's r.PostForm gives it.
		"twilio-go": func(_ []byte, params map[string]string) bool {
			return official.Validate(f.URL, params, f.Signature)
		},
		"twiliosig": func(body []byte, _ map[string]string) bool {
			_, err := validator.Verify(f.URL, body, f.Signature, "")
			return err == nil
		},
		"twiliosig-oneshot": func(body []byte, _ map[string]string) bool {
			return twiliosig.Verify(secret, f.URL, body, f.Signature, "") == nil
		},
	}, nil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gobench: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gobench <twilio-go|twiliosig|twiliosig-oneshot|allocs> <fixture.json>")
		os.Exit(2)
	}
	raw, err := os.ReadFile(os.Args[2])
	if err != nil {
		fail("%v", err)
	}
	var f fixture
	if err := json.Unmarshal(raw, &f); err != nil {
		fail("fixture: %v", err)
	}
	params := make(map[string]string, len(f.Params))
	for _, p := range f.Params {
		params[p[0]] = p[1]
	}
	body := []byte(f.Body)
	all, err := contenders(f)
	if err != nil {
		fail("%v", err)
	}

	if os.Args[1] == "allocs" {
		for _, name := range []string{"twilio-go", "twiliosig", "twiliosig-oneshot"} {
			verify := all[name]
			allocs := testing.AllocsPerRun(1000, func() { verify(body, params) })
			fmt.Printf("ALLOCS %s %g\n", name, allocs)
		}
		return
	}
	verify, ok := all[os.Args[1]]
	if !ok {
		fail("unknown contender %q", os.Args[1])
	}
	if !verify(body, params) {
		fail("the fixture does not verify")
	}
	tamperedParams := make(map[string]string, len(params))
	for k, v := range params {
		tamperedParams[k] = v
	}
	tamperedParams["Body"] += "!"
	tamperedBody := []byte(strings.Replace(f.Body, "Body=", "Body=%21", 1))
	if verify(tamperedBody, tamperedParams) {
		fail("a tampered request verifies")
	}
	fmt.Println("ready")

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		n, err := strconv.Atoi(strings.TrimSpace(in.Text()))
		if err != nil || n <= 0 {
			return
		}
		failures := 0
		start := time.Now()
		for i := 0; i < n; i++ {
			if !verify(body, params) {
				failures++
			}
		}
		elapsed := time.Since(start)
		if failures > 0 {
			fail("%d verifications failed", failures)
		}
		fmt.Println(elapsed.Nanoseconds())
	}
}
