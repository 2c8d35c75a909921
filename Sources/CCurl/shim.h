#ifndef SITROOM_CCURL_SHIM_H
#define SITROOM_CCURL_SHIM_H

// libcurl (Debian: libcurl4-openssl-dev). Debian installs the headers under a multiarch folder that
// pkg-config adds to the include path, so include by name rather than by path.
#include <curl/curl.h>

// curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call. These typed wrappers
// (after GRDB's Sources/GRDBSQLite/shim.h) are the only way the Curl module reaches them; pick the one
// whose argument type matches what curl_easy_setopt(3) documents for the option.

static inline CURLcode sitroom_curl_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

/// For options that take a `char *` (strings are copied by libcurl unless documented otherwise)
/// or a `void *` (callback user data, CURLOPT_POSTFIELDS, CURLOPT_ERRORBUFFER, a `curl_slist *`).
static inline CURLcode sitroom_curl_easy_setopt_pointer(CURL *handle, CURLoption option, const void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode sitroom_curl_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

/// CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION.
static inline CURLcode sitroom_curl_easy_setopt_write_callback(CURL *handle, CURLoption option,
                                                               curl_write_callback value) {
    return curl_easy_setopt(handle, option, value);
}

/// CURLOPT_READFUNCTION.
static inline CURLcode sitroom_curl_easy_setopt_read_callback(CURL *handle, CURLoption option,
                                                              curl_read_callback value) {
    return curl_easy_setopt(handle, option, value);
}

/// CURLOPT_XFERINFOFUNCTION.
static inline CURLcode sitroom_curl_easy_setopt_xferinfo_callback(CURL *handle, CURLoption option,
                                                                  curl_xferinfo_callback value) {
    return curl_easy_setopt(handle, option, value);
}

/// CURLOPT_PREREQFUNCTION (libcurl 7.80.0+): called after a connection is made or reused, right before
/// the request is sent; returning CURL_PREREQFUNC_ABORT stops the transfer.
typedef int (*sitroom_curl_prereq_callback)(void *clientp, char *conn_primary_ip, char *conn_local_ip,
                                            int conn_primary_port, int conn_local_port);
static inline CURLcode sitroom_curl_easy_setopt_prereq_callback(CURL *handle, sitroom_curl_prereq_callback value) {
    return curl_easy_setopt(handle, CURLOPT_PREREQFUNCTION, value);
}

static inline CURLcode sitroom_curl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode sitroom_curl_easy_getinfo_double(CURL *handle, CURLINFO info, double *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode sitroom_curl_easy_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode sitroom_curl_easy_getinfo_string(CURL *handle, CURLINFO info, char **value) {
    return curl_easy_getinfo(handle, info, value);
}

// Macros built from casts and shifts do not import into Swift; re-export them as constants.
static const unsigned long sitroom_CURLAUTH_BASIC = CURLAUTH_BASIC;
static const long sitroom_CURL_GLOBAL_DEFAULT = CURL_GLOBAL_DEFAULT;
static const int sitroom_CURL_ERROR_SIZE = CURL_ERROR_SIZE;

#endif
