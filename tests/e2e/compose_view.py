#!/usr/bin/env python3
# tests/e2e/compose_view.py < CONFIG.yml: what a Compose tool's `config`
# output means for the stack, one canonical JSON per service: docker-compose
# 1.x and the v2 plugin print the same file differently (short vs long
# syntax of devices, volumes, depends_on; quoting), so t_02_compose compares
# these views, not the text.
import sys, yaml, json
def vol(v):
    if isinstance(v, str):
        p = v.split(':')
        src, dst = p[0], p[1]
        ro = len(p) > 2 and 'ro' in p[2].split(',')
        return f"{src}:{dst}:{'ro' if ro else 'rw'}"
    return f"{v.get('source','')}:{v['target']}:{'ro' if v.get('read_only') else 'rw'}"
def dev(d):
    if isinstance(d, str):
        p = d.split(':'); return f"{p[0]}:{p[1] if len(p) > 1 else p[0]}"
    return f"{d['source']}:{d.get('target', d['source'])}"
def norm(doc):
    out = {}
    for name, s in sorted(doc.get('services', {}).items()):
        dep = s.get('depends_on') or {}
        if isinstance(dep, list): dep = {k: {'condition': 'service_started'} for k in dep}
        out[name] = {
            'image': s.get('image'), 'container_name': s.get('container_name'),
            'network_mode': s.get('network_mode'), 'pid': s.get('pid'),
            'cap_add': sorted(s.get('cap_add') or []),
            'sysctls': {k: str(v) for k, v in (s.get('sysctls') or {}).items()},
            'depends_on': {k: v.get('condition') for k, v in dep.items()},
            'devices': sorted(dev(d) for d in s.get('devices') or []),
            'environment': {k: '' if v is None else str(v) for k, v in (s.get('environment') or {}).items()},
            'volumes': sorted(vol(v) for v in s.get('volumes') or []),
            'mac_address': s.get('mac_address'),
            'networks': {k: (v or {}).get('ipv4_address') for k, v in (s.get('networks') or {}).items()},
            'entrypoint': s.get('entrypoint'), 'restart': s.get('restart'),
            'healthcheck': (s.get('healthcheck') or {}).get('test'),
        }
    return out
print(json.dumps(norm(yaml.safe_load(sys.stdin)), indent=1, sort_keys=True))
