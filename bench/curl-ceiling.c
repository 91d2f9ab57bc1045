/* The fan-out's limit: what one libcurl-multi thread can POST to the same
 * receivers, with nothing else to do. Keeps IN_FLIGHT transfers running,
 * spread round-robin over the URLs, each a POST of a PAYLOAD_BYTES body with
 * headers of a webhook's size (Content-Type, webhook-id, webhook-timestamp,
 * webhook-signature, User-Agent, no Expect), until COUNT have finished; the
 * same multi settings as provisiond's dispatcher (CurlMulti.swift). Easy
 * handles are reused: this is the library's ceiling, not provisiond's design.
 *
 * Build: gcc -O2 -o curl-ceiling bench/curl-ceiling.c -lcurl
 * Usage: curl-ceiling COUNT IN_FLIGHT PAYLOAD_BYTES URL [URL...]
 * Prints: curl-ceiling: posts=N failed=F in_flight=K payload=B seconds=S posts_per_second=R
 * Exits 1 if any POST failed or was not answered 2xx. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t discard(char *data, size_t size, size_t count, void *user) {
    (void)data; (void)user;
    return size * count;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s COUNT IN_FLIGHT PAYLOAD_BYTES URL [URL...]\n", argv[0]);
        return 2;
    }
    long count = atol(argv[1]), in_flight = atol(argv[2]), payload_bytes = atol(argv[3]);
    char **urls = argv + 4;
    int nurls = argc - 4;
    if (count <= 0 || in_flight <= 0 || payload_bytes < 0) {
        fprintf(stderr, "COUNT and IN_FLIGHT must be positive, PAYLOAD_BYTES not negative\n");
        return 2;
    }
    if (in_flight > count) in_flight = count;

    char *payload = malloc(payload_bytes + 1);
    memset(payload, 'x', payload_bytes);
    payload[payload_bytes] = 0;

    /* The same header sizes as a webhook: evt_ + 24 hex, Unix seconds, v1, + base64 of 32 bytes. */
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "webhook-id: evt_000000000000000000000000");
    headers = curl_slist_append(headers, "webhook-timestamp: 1764580000");
    headers = curl_slist_append(headers, "webhook-signature: v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    headers = curl_slist_append(headers, "Expect:");

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 512L);

    CURL **easy = calloc(in_flight, sizeof *easy);
    long started = 0, finished = 0, failed = 0;
    for (long i = 0; i < in_flight; i++) {
        easy[i] = curl_easy_init();
        curl_easy_setopt(easy[i], CURLOPT_POST, 1L);
        curl_easy_setopt(easy[i], CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(easy[i], CURLOPT_POSTFIELDSIZE, payload_bytes);
        curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(easy[i], CURLOPT_USERAGENT, "provisiond/0.1.0");
        curl_easy_setopt(easy[i], CURLOPT_TIMEOUT_MS, 10000L);
        curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, discard);
    }

    double start = now();
    for (long i = 0; i < in_flight; i++) {
        curl_easy_setopt(easy[i], CURLOPT_URL, urls[started % nurls]);
        curl_multi_add_handle(multi, easy[i]);
        started++;
    }
    /* Bounded: every transfer ends (answer or 10 s timeout), and each end starts at most one more. */
    while (finished < count) {
        int running = 0, ready = 0, left = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE) continue;
            CURL *e = msg->easy_handle;
            long status = 0;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
            if (msg->data.result != CURLE_OK || status < 200 || status > 299) failed++;
            finished++;
            curl_multi_remove_handle(multi, e);
            if (started < count) {
                curl_easy_setopt(e, CURLOPT_URL, urls[started % nurls]);
                curl_multi_add_handle(multi, e);
                started++;
            }
        }
        if (finished < count) curl_multi_poll(multi, NULL, 0, 1000, &ready);
    }
    double seconds = now() - start;

    printf("curl-ceiling: posts=%ld failed=%ld in_flight=%ld payload=%ld seconds=%.3f posts_per_second=%.0f\n",
           finished, failed, in_flight, payload_bytes, seconds, finished / seconds);
    for (long i = 0; i < in_flight; i++) curl_easy_cleanup(easy[i]);
    curl_multi_cleanup(multi);
    curl_slist_free_all(headers);
    curl_global_cleanup();
    free(easy);
    free(payload);
    return failed ? 1 : 0;
}
