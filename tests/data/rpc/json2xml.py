#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-only
"""Write the XML-RPC twin of JSON golden cases (see README.md).

usage: json2xml.py [--offset N] CASE.request.json...

For each NNNN-name.request.json (and its NNNN-name.response.json) writes
MMMM-name.request.xml and MMMM-name.response.xml with MMMM = NNNN + offset
(default 4000). The request is written the way xapi's rpclib writes it:
strings and integers as untyped <value>text</value>, floats as <double>,
booleans as <boolean>, null as <nil/>. The expected response is written the
way xenops-c writes it: typed values in a {Status, Value} or
{Status: "Failure", ErrorDescription} struct, indented for reading (blanks
between elements carry no data). Wildcards and ${NAME}
substitutions are carried over unchanged.
"""
import json
import os
import re
import sys
from xml.sax.saxutils import escape

VAR = '\ue000var:'


def load(path):
    """JSON text whose ${NAME} outside strings is read as a placeholder."""
    text = open(path).read()
    out, i, in_str = [], 0, False
    while i < len(text):
        c = text[i]
        if in_str and c == '\\':
            out.append(text[i:i + 2])
            i += 2
            continue
        if c == '"':
            in_str = not in_str
        m = None if in_str else re.match(r'\$\{(\w+)\}', text[i:])
        if m:
            out.append('"%s%s"' % (VAR, m.group(1)))
            i += m.end()
            continue
        out.append(c)
        i += 1
    return json.loads(''.join(out))


def text(s):
    if s.startswith(VAR):
        return '${%s}' % s[len(VAR):]
    return escape(s, {'"': '&quot;', '\r': '&#13;'})


def value(v, typed):
    if v is None:
        return '<value><nil/></value>'
    if isinstance(v, bool):
        return '<value><boolean>%d</boolean></value>' % v
    if isinstance(v, int):
        if not typed:
            return '<value>%d</value>' % v
        tag = 'int' if -2**31 <= v < 2**31 else 'i8'
        return '<value><%s>%d</%s></value>' % (tag, v, tag)
    if isinstance(v, float):
        return '<value><double>%.16g</double></value>' % v
    if isinstance(v, str):
        if typed and not v.startswith(VAR):
            return '<value><string>%s</string></value>' % text(v)
        return '<value>%s</value>' % text(v)
    if isinstance(v, list):
        return '<value><array><data>%s</data></array></value>' % ''.join(
            value(x, typed) for x in v)
    return '<value><struct>%s</struct></value>' % ''.join(
        '<member><name>%s</name>%s</member>' % (text(k), value(x, typed))
        for k, x in v.items())


def pretty(v, depth):
    """A typed value, one container element per line, for reading."""
    pad = ' ' * depth
    if isinstance(v, list) and v:
        return '<value><array><data>\n%s%s</data></array></value>' % (
            ''.join('%s %s\n' % (pad, pretty(x, depth + 1)) for x in v), pad)
    if isinstance(v, dict) and v:
        return '<value><struct>\n%s%s</struct></value>' % (''.join(
            '%s <member><name>%s</name>%s</member>\n' % (
                pad, text(k), pretty(x, depth + 1)) for k, x in v.items()),
            pad)
    return value(v, True)


def request(req):
    params = req.get('params', [])
    return ('<?xml version="1.0"?>\n<methodCall><methodName>%s</methodName>'
            '<params>%s</params></methodCall>\n' % (
                text(req['method']),
                ''.join('<param>%s</param>' % value(p, False)
                        for p in params)))


def response(resp):
    if resp.get('error') is not None:
        v = {'Status': 'Failure', 'ErrorDescription': resp['error']}
    else:
        v = {'Status': 'Success', 'Value': resp.get('result')}
    return ('<?xml version="1.0"?>\n<methodResponse><params><param>\n%s\n'
            '</param></params></methodResponse>\n' % pretty(v, 0))


def main(argv):
    offset = 4000
    if argv[:1] == ['--offset']:
        offset = int(argv[1])
        argv = argv[2:]
    for req_path in argv:
        d, base = os.path.split(req_path)
        m = re.match(r'(\d+)-(.*)\.request\.json$', base)
        if not m:
            sys.exit('%s: not an NNNN-name.request.json file' % req_path)
        num = '%0*d' % (len(m.group(1)), int(m.group(1)) + offset)
        out = os.path.join(d, '%s-%s' % (num, m.group(2)))
        resp_path = req_path[:-len('.request.json')] + '.response.json'
        with open(out + '.request.xml', 'w') as f:
            f.write(request(load(req_path)))
        with open(out + '.response.xml', 'w') as f:
            f.write(response(load(resp_path)))


if __name__ == '__main__':
    main(sys.argv[1:])
