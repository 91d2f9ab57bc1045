#include <curl/curl.h>

// curl_easy_setopt, curl_multi_setopt and curl_easy_getinfo are variadic,
// which Swift cannot call; these typed wrappers can be.
static inline CURLcode provisiond_easy_setopt_long(CURL *h, CURLoption o, long v) {
    return curl_easy_setopt(h, o, v);
}
static inline CURLcode provisiond_easy_setopt_string(CURL *h, CURLoption o, const char *v) {
    return curl_easy_setopt(h, o, v);
}
static inline CURLcode provisiond_easy_setopt_pointer(CURL *h, CURLoption o, void *v) {
    return curl_easy_setopt(h, o, v);
}
static inline CURLcode provisiond_easy_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) {
    return curl_easy_setopt(h, o, v);
}
typedef size_t (*provisiond_write_callback)(char *ptr, size_t size, size_t nmemb, void *userdata);
static inline CURLcode provisiond_easy_setopt_write_callback(CURL *h, CURLoption o, provisiond_write_callback v) {
    return curl_easy_setopt(h, o, v);
}
static inline CURLcode provisiond_easy_getinfo_long(CURL *h, CURLINFO i, long *v) {
    return curl_easy_getinfo(h, i, v);
}
static inline CURLMcode provisiond_multi_setopt_long(CURLM *m, CURLMoption o, long v) {
    return curl_multi_setopt(m, o, v);
}
