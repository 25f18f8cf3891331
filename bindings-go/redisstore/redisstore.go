// Package redisstore keeps twiliosig's retry records in Redis (go-redis), so that every instance of
// an app answers a Twilio retry with the response the first delivery got:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
//	store := redisstore.New(rdb, redisstore.Options{})
//	handler := twiliosig.Middleware(v, twiliosig.Options{})(
//		twiliosig.Idempotent(store, twiliosig.IdempotencyOptions{})(app))
//
// It is a module of its own so that users of twiliosig who do not want go-redis do not get it.
//
// A claim is SET NX PX (in a Lua script that also returns what is there when the key is taken, or
// "ours" when it holds this very claim: a go-redis retry of a claim that had succeeded); completing
// and releasing check the claim's owner in the same script, so a run whose lease expired cannot touch
// the run that took over. Every key has a TTL: the lease for a claim, Options.TTL for a
// stored response. Keys are Options.Prefix + twiliosig.DeliveryKey (a digest); nothing secret is
// stored. Values use the layout the Python package's RedisStore uses, with the same default prefix, so
// Go and Python instances can share one Redis.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	twiliosig "github.com/twilio-signature/twilio-signature/bindings-go"
)

// DefaultPrefix is prepended to every key unless Options.Prefix says otherwise.
const DefaultPrefix = "twilio-signature:idempotency:"

var (
	// A claim that finds its own owner is "ours": go-redis retries a command after a read timeout,
	// and the retry of a claim that had succeeded must not find the first delivery busy with itself.
	claimScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local found = redis.call('GET', KEYS[1])
if found == ARGV[1] then return 'ours' end
return found
`)
	completeScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`)
	releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)
)

// Options configure New; zero values mean the defaults.
type Options struct {
	TTL    time.Duration // how long a stored response is kept (default twiliosig.DefaultIdempotencyTTL)
	Prefix string        // key prefix (default DefaultPrefix)
}

// Store is a twiliosig.IdempotencyStore in Redis. Safe for concurrent use.
type Store struct {
	client redis.Scripter
	ttl    time.Duration
	prefix string
}

var _ twiliosig.IdempotencyStore = (*Store)(nil)

// New returns a store over client (a *redis.Client, *redis.ClusterClient, or any redis.Scripter).
// Give the client timeouts that fit IdempotencyOptions.Wait (5 s by default) and Twilio's 15 s:
// DialTimeout, ReadTimeout and WriteTimeout of 1 s with MaxRetries 1-2, so that a claim gives up
// within a few seconds. While Redis is down each webhook waits for them before it is processed
// unguarded (or refused, with RefuseOnStoreError).
func New(client redis.Scripter, opts Options) *Store {
	if opts.TTL <= 0 {
		opts.TTL = twiliosig.DefaultIdempotencyTTL
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	return &Store{client: client, ttl: opts.TTL, prefix: opts.Prefix}
}

// Claim implements twiliosig.IdempotencyStore.
func (s *Store) Claim(ctx context.Context, key, owner string, lease time.Duration) (twiliosig.ClaimState, twiliosig.StoredResponse, error) {
	found, err := claimScript.Run(ctx, s.client, []string{s.prefix + key}, "P"+owner, ms(lease)).Text()
	if errors.Is(err, redis.Nil) || (err == nil && found == "ours") { // values start with P or D
		return twiliosig.ClaimOurs, twiliosig.StoredResponse{}, nil
	}
	if err != nil {
		return 0, twiliosig.StoredResponse{}, fmt.Errorf("redisstore: claim: %w", err)
	}
	if len(found) > 0 && found[0] == 'D' {
		var resp twiliosig.StoredResponse
		if err := resp.UnmarshalBinary([]byte(found[1:])); err != nil {
			return 0, twiliosig.StoredResponse{}, fmt.Errorf("redisstore: %s%s: %w", s.prefix, key, err)
		}
		return twiliosig.ClaimDone, resp, nil
	}
	return twiliosig.ClaimBusy, twiliosig.StoredResponse{}, nil
}

// Complete implements twiliosig.IdempotencyStore.
func (s *Store) Complete(ctx context.Context, key, owner string, resp twiliosig.StoredResponse) (bool, error) {
	data, err := resp.MarshalBinary()
	if err != nil {
		return false, err
	}
	value := append([]byte{'D'}, data...)
	done, err := completeScript.Run(ctx, s.client, []string{s.prefix + key}, "P"+owner, value, ms(s.ttl)).Int()
	if err != nil {
		return false, fmt.Errorf("redisstore: complete: %w", err)
	}
	return done == 1, nil
}

// Release implements twiliosig.IdempotencyStore.
func (s *Store) Release(ctx context.Context, key, owner string) (bool, error) {
	done, err := releaseScript.Run(ctx, s.client, []string{s.prefix + key}, "P"+owner).Int()
	if err != nil {
		return false, fmt.Errorf("redisstore: release: %w", err)
	}
	return done == 1, nil
}

func ms(d time.Duration) int64 { return max(1, d.Milliseconds()) }
