/* http - libcurl's multi interface on a libev loop: many HTTP calls in flight in one process
 *
 * The worker adds easy handles built by a provider; libcurl tells us which sockets to watch
 * (ev_io) and when to time out (ev_timer); when a transfer ends, its callback runs from the loop.
 */
#ifndef HERALD_HTTP_H
#define HERALD_HTTP_H

#include <stddef.h>

#include <curl/curl.h>

struct ev_loop;
struct http;

/* http_done_cb - EASY finished with RC (CURLE_OK: an HTTP answer came, whatever its status);
 * EASY is already removed from the multi and belongs to the callback again */
typedef void http_done_cb(CURL *easy, CURLcode rc, void *arg);

/* http_new - a multi handle driven by LOOP; NULL on error (logged) */
struct http *http_new(struct ev_loop *loop);
/* http_add - start EASY; CB(EASY, rc, ARG) runs once when it ends (never from inside http_add);
 * 0, or -1 (logged) when libcurl refused it and nothing will be called. While EASY runs, http
 * borrows its CURLOPT_PRIVATE and puts the caller's value back before CB runs. */
int http_add(struct http *h, CURL *easy, http_done_cb *cb, void *arg);
/* http_running - transfers added and not yet finished */
size_t http_running(const struct http *h);
/* http_free - abort what is still running (each callback runs with CURLE_ABORTED_BY_CALLBACK;
 * an http_add from there fails), stop the watchers, free H (NULL is fine); not from inside a
 * done callback */
void http_free(struct http *h);

#endif
