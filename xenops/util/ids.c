/* SPDX-License-Identifier: LGPL-2.1-only */

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#include "util/errors.h"
#include "util/ids.h"
#include "util/log.h"

bool
ids_is_uuid(const char *s)
{
    static const int groups[] = { 8, 4, 4, 4, 12 };
    const char *p = s;

    if (!s)
        return false;
    for (int g = 0; g < 5; g++) {
        for (int i = 0; i < groups[g]; i++, p++)
            if (!isxdigit((unsigned char)*p))
                return false;
        if (g < 4 && *p++ != '-')
            return false;
    }
    return *p == '\0';
}

bool
ids_is_dev(const char *s)
{
    size_t n;

    if (!s)
        return false;
    n = strlen(s);
    if (n == 0 || n > IDS_DEV_MAX || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!isalnum(c) && c != '_' && c != '.' && c != '-')
            return false;
    }
    return true;
}

/* Quote at most 64 printable characters of untrusted text for a message. */
static void
ids_sanitise(const char *s, char *out, size_t n)
{
    size_t j = 0;

    for (size_t i = 0; s && s[i] && j + 1 < n && i < 64; i++)
        out[j++] = isprint((unsigned char)s[i]) ? s[i] : '?';
    out[j] = '\0';
}

int
ids_check_vm(const char *id)
{
    char shown[72];

    if (ids_is_uuid(id))
        return 0;
    ids_sanitise(id, shown, sizeof(shown));
    LOG(WARN, "invalid VM id '%s': not a UUID", shown);
    return xo_err_internal_code(XO_EINVAL, "invalid VM id '%s': not a UUID",
                                shown);
}

int
ids_check_dev(const char *id)
{
    char shown[72];

    if (ids_is_dev(id))
        return 0;
    ids_sanitise(id, shown, sizeof(shown));
    LOG(WARN, "invalid device id '%s'", shown);
    return xo_err_internal_code(XO_EINVAL, "invalid device id '%s'", shown);
}

void
ids_tmp_id(const char *uuid, char which, char *out)
{
    bool zeros = strspn(uuid + 24, "0") >= 11;

    memcpy(out, uuid, 24);
    memset(out + 24, zeros ? 'f' : '0', 11);
    out[35] = which;
    out[36] = '\0';
}
