package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	twiliosig "github.com/twilio-signature/twilio-signature/bindings-go"
	"github.com/twilio-signature/twilio-signature/bindings-go/idempotencytest"
	"github.com/twilio-signature/twilio-signature/bindings-go/redisstore"
)

// server is a redis-server of the test's own on a free loopback port, without persistence.
type server struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
	// paused: stopped with SIGSTOP
	paused bool
}

// startRedis starts redis-server, or skips the test when it is not installed (unless
// TWILIOSIG_REQUIRE_REDIS=1, as `make test-idempotency` sets: then the test fails).
func startRedis(t *testing.T) *server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("TWILIOSIG_REQUIRE_REDIS") == "1" {
			t.Fatal("redis-server is not installed and TWILIOSIG_REQUIRE_REDIS=1")
		}
		t.Skip("redis-server is not installed: skipping the Redis store tests (apt-get install redis-server, or run `make test-idempotency`)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &server{t: t, port: port, dir: t.TempDir()}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--loglevel", "warning")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", s.addr(), 200*time.Millisecond); err == nil {
			_ = c.Close()
			return
		}
	}
	s.t.Fatalf("redis-server did not listen on %s", s.addr())
}

// pause stops the redis-server process (SIGSTOP): the kernel still accepts connections and buffers
// what clients send, but nothing is answered until resume.
func (s *server) pause() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatal(err)
	}
	s.paused = true
}

func (s *server) resume() {
	if s.cmd != nil && s.paused {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
		s.paused = false
	}
}

func (s *server) stop() {
	s.resume()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(os.Interrupt)
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

func (s *server) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// client fails fast while Redis is down: short timeouts, one retry.
func (s *server) client(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.addr(), DialTimeout: time.Second, ReadTimeout: time.Second,
		WriteTimeout: time.Second, MaxRetries: 1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func uniquePrefix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "test-" + hex.EncodeToString(b[:]) + ":"
}

func keys(t *testing.T, c *redis.Client, prefix string) []string {
	t.Helper()
	found, err := c.Keys(context.Background(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestRedisStoreContract(t *testing.T) {
	s := startRedis(t)
	idempotencytest.TestStore(t, redisstore.New(s.client(t), redisstore.Options{Prefix: uniquePrefix()}))
}

func TestIdempotentWithRedisAcrossTwoInstances(t *testing.T) {
	idempotencytest.TestMiddleware(t, redisFleet(t, false))
}

// The same suite with the store given as twiliosig.Middleware's Options{Idempotency: store}.
func TestMiddlewareOptionsIdempotencyWithRedisAcrossTwoInstances(t *testing.T) {
	idempotencytest.TestMiddleware(t, redisFleet(t, true))
}

func redisFleet(t *testing.T, viaOptions bool) idempotencytest.Fleet {
	s := startRedis(t)
	c, prefix := s.client(t), uniquePrefix()
	return idempotencytest.Fleet{
		Store:      redisstore.New(c, redisstore.Options{Prefix: prefix}),
		Keys:       func() int { return len(keys(t, c, prefix)) },
		TTLs:       func() []time.Duration { return pttls(t, c, prefix) },
		ViaOptions: viaOptions,
	}
}

func pttls(t *testing.T, c *redis.Client, prefix string) []time.Duration {
	var ttls []time.Duration
	for _, k := range keys(t, c, prefix) {
		ttl, err := c.PTTL(context.Background(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		ttls = append(ttls, ttl) // -1 (no TTL) fails the suite's check
	}
	return ttls
}

func TestEveryKeyHasATTLTheLeaseThenTheStoreTTL(t *testing.T) {
	s := startRedis(t)
	c, ctx := s.client(t), context.Background()
	store := redisstore.New(c, redisstore.Options{TTL: time.Hour, Prefix: "pttl:"})
	key := twiliosig.DeliveryKey([32]byte{7}, idempotencytest.NewToken())
	if st, _, err := store.Claim(ctx, key, "a", 30*time.Second); err != nil || st != twiliosig.ClaimOurs {
		t.Fatalf("claim: %v %v", st, err)
	}
	if ttl := c.PTTL(ctx, "pttl:"+key).Val(); ttl <= 0 || ttl > 30*time.Second {
		t.Fatalf("claim TTL %v", ttl)
	}
	if ok, err := store.Complete(ctx, key, "a", twiliosig.StoredResponse{Status: 200, Body: []byte("x")}); !ok || err != nil {
		t.Fatalf("complete: %v %v", ok, err)
	}
	if ttl := c.PTTL(ctx, "pttl:"+key).Val(); ttl <= 30*time.Second || ttl > time.Hour {
		t.Fatalf("stored TTL %v", ttl)
	}
	// The default prefix is the Python RedisStore's, so both can share one Redis.
	if redisstore.DefaultPrefix != "twilio-signature:idempotency:" {
		t.Fatalf("DefaultPrefix %q", redisstore.DefaultPrefix)
	}
}

func TestRedisStoppedProcessesByDefaultRefusesWithTheOptionAndRecovers(t *testing.T) {
	s := startRedis(t)
	c, prefix := s.client(t), uniquePrefix()
	store := redisstore.New(c, redisstore.Options{Prefix: prefix})
	h := idempotencytest.NewHarness()
	process := h.NewApp(t, store, twiliosig.IdempotencyOptions{})
	refuse := h.NewApp(t, store, twiliosig.IdempotencyOptions{RefuseOnStoreError: true})
	other := h.NewApp(t, store, twiliosig.IdempotencyOptions{})
	// The same two behaviours through Middleware's Options{Idempotency: store}.
	h.ViaOptions = true
	processViaOptions := h.NewApp(t, store, twiliosig.IdempotencyOptions{})
	refuseViaOptions := h.NewApp(t, store, twiliosig.IdempotencyOptions{RefuseOnStoreError: true})

	s.stop()
	for _, app := range []*idempotencytest.App{process, processViaOptions} {
		token := idempotencytest.NewToken()
		if r := idempotencytest.Post(t, app, "/voice", token, false); r.Err != nil || r.Status != 200 || h.Runs(token) != 1 {
			t.Fatalf("with Redis down: %d %v, runs %d", r.Status, r.Err, h.Runs(token))
		}
		logs := app.Log.String()
		if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "twilio webhook retry store failed (claim): redisstore: claim:") ||
			!strings.Contains(logs, "processed unguarded") {
			t.Fatalf("log: %s", logs)
		}
	}
	for _, app := range []*idempotencytest.App{refuse, refuseViaOptions} {
		token := idempotencytest.NewToken()
		if r := idempotencytest.Post(t, app, "/voice", token, false); r.Err != nil || r.Status != 503 || h.Runs(token) != 0 {
			t.Fatalf("refusing with Redis down: %d %v, runs %d", r.Status, r.Err, h.Runs(token))
		}
	}

	s.start() // back, empty (no persistence): every instance stores and replays again
	for _, app := range []*idempotencytest.App{process, refuse, processViaOptions, refuseViaOptions} {
		token := idempotencytest.NewToken()
		first := idempotencytest.Post(t, app, "/voice", token, false)
		retry := idempotencytest.Post(t, other, "/voice", token, false)
		if first.Status != 200 || retry.Status != 200 || !retry.Replayed || string(retry.Body) != string(first.Body) || h.Runs(token) != 1 {
			t.Fatalf("after recovery: %d, %d replayed=%v, runs %d", first.Status, retry.Status, retry.Replayed, h.Runs(token))
		}
	}
	if len(keys(t, c, prefix)) != 4 {
		t.Fatalf("keys after recovery: %v", keys(t, c, prefix))
	}
}

// dialCounter counts the connections a go-redis client opens.
type dialCounter struct{ n atomic.Int64 }

func (d *dialCounter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d.n.Add(1)
		return next(ctx, network, addr)
	}
}
func (*dialCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (*dialCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// Issue 24 item 4: Redis pauses (SIGSTOP) while the first delivery claims its key. go-redis's read
// times out and it re-sends the claim on a new connection; when Redis resumes it runs the first claim
// (the key now holds this delivery's owner) and then the re-sent one, which must find "ours": the
// handler runs once and the delivery gets its 200, not a wait ending in 409 with no run at all.
func TestAClaimReSentByGoRedisWhileRedisIsPausedRunsTheHandlerOnce(t *testing.T) {
	s := startRedis(t)
	// The timeouts the README recommends, in proportion: ReadTimeout 1 s, one retry or two.
	c := redis.NewClient(&redis.Options{Addr: s.addr(), DialTimeout: time.Second, ReadTimeout: time.Second,
		WriteTimeout: time.Second, MaxRetries: 2})
	t.Cleanup(func() { _ = c.Close() })
	dials := &dialCounter{}
	c.AddHook(dials)
	store := redisstore.New(c, redisstore.Options{Prefix: uniquePrefix()})
	h := idempotencytest.NewHarness()
	app := h.NewApp(t, store, twiliosig.IdempotencyOptions{}) // Wait: idempotencytest.Wait (2 s)

	// A first delivery loads the scripts (so the paused claim is an EVALSHA that runs) and leaves a
	// connection in the pool.
	if r := idempotencytest.Post(t, app, "/voice", idempotencytest.NewToken(), false); r.Err != nil || r.Status != 200 {
		t.Fatalf("warm-up: %d %v", r.Status, r.Err)
	}
	connections := dials.n.Load()

	token := idempotencytest.NewToken()
	s.pause()
	done := make(chan idempotencytest.Reply, 1)
	go func() { done <- idempotencytest.Post(t, app, "/voice", token, false) }()
	// The first attempt's read times out after 1 s; the re-sent claim waits on a new connection.
	time.Sleep(1500 * time.Millisecond)
	s.resume()
	r := <-done
	if r.Err != nil || r.Status != 200 || r.Replayed || h.Runs(token) != 1 {
		t.Fatalf("the delivery whose claim go-redis re-sent: %d %v replayed=%v (%q), handler runs %d\nlog: %s",
			r.Status, r.Err, r.Replayed, r.Body, h.Runs(token), app.Log.String())
	}
	if got := dials.n.Load(); got <= connections {
		t.Fatalf("go-redis did not re-send the claim on a new connection (%d connections, %d before)", got, connections)
	}
	if retry := idempotencytest.Post(t, app, "/voice", token, false); retry.Status != 200 || !retry.Replayed || h.Runs(token) != 1 {
		t.Fatalf("Twilio's retry: %d replayed=%v, runs %d", retry.Status, retry.Replayed, h.Runs(token))
	}
}

// Issue 24 item 4: a delivery whose client goes away while its claim is on the wire (Redis paused)
// leaves no claim behind: the claim runs when Redis resumes, and the middleware, which saw the claim
// call fail, frees it, so Twilio's retry runs the handler at once instead of waiting out the lease
// (60 s) with 409s.
func TestAClaimWhoseClientWentAwayMidClaimIsReleased(t *testing.T) {
	s := startRedis(t)
	c := redis.NewClient(&redis.Options{Addr: s.addr(), DialTimeout: time.Second, ReadTimeout: time.Second,
		WriteTimeout: time.Second, MaxRetries: 2})
	t.Cleanup(func() { _ = c.Close() })
	prefix := uniquePrefix()
	store := redisstore.New(c, redisstore.Options{Prefix: prefix})
	h := idempotencytest.NewHarness()
	app := h.NewApp(t, store, twiliosig.IdempotencyOptions{})
	if r := idempotencytest.Post(t, app, "/voice", idempotencytest.NewToken(), false); r.Err != nil || r.Status != 200 {
		t.Fatalf("warm-up: %d %v", r.Status, r.Err) // loads the scripts: the paused claim is an EVALSHA that runs
	}
	stored := len(keys(t, c, prefix))

	token := idempotencytest.NewToken()
	s.pause()
	if r := idempotencytest.PostWithin(t, app, "/voice", token, false, 300*time.Millisecond); r.Err == nil {
		t.Fatalf("the client did not give up: %d", r.Status)
	}
	time.Sleep(1500 * time.Millisecond) // go-redis's read times out (1 s); it does not retry for a gone request
	s.resume()
	deadline := time.Now().Add(5 * time.Second)
	for len(keys(t, c, prefix)) != stored && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := keys(t, c, prefix); len(got) != stored {
		t.Fatalf("a claim was left behind: %d keys, %d before", len(got), stored)
	}
	start := time.Now()
	if r := idempotencytest.Post(t, app, "/voice", token, false); r.Err != nil || r.Status != 200 || r.Replayed || h.Runs(token) != 1 {
		t.Fatalf("Twilio's retry: %d %v replayed=%v, runs %d", r.Status, r.Err, r.Replayed, h.Runs(token))
	}
	if waited := time.Since(start); waited >= idempotencytest.Wait {
		t.Fatalf("the retry waited %v", waited)
	}
}
