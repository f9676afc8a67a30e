#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (corpus/<target>/). Run from fuzz/.

process_queue seeds are guest-memory images laid out as the target expects: control queue
descriptor table at 0x0, available ring at 0x100, used ring at 0x200; the cursor queue's at
0x800/0x900/0xa00; request and response buffers from 0xc00 on.

The other targets' seeds: realistic vhost-user sessions (relay_frontend_request,
vhost_user_request), rounds of requests and replies (relay_backend_reply), control-tube
messages (tube_message), frame replies (frame_reply), the repository's policies and the
grammar's forms (policy_parser), and display sessions (display_socket). Each target's doc
comment describes its input layout.
"""
import os
import struct

CMD = dict(GET_DISPLAY_INFO=0x100, RESOURCE_CREATE_2D=0x101, RESOURCE_UNREF=0x102,
           SET_SCANOUT=0x103, RESOURCE_FLUSH=0x104, TRANSFER_TO_HOST_2D=0x105,
           RESOURCE_ATTACH_BACKING=0x106, RESOURCE_DETACH_BACKING=0x107, GET_CAPSET_INFO=0x108,
           GET_CAPSET=0x109, GET_EDID=0x10a, RESOURCE_ASSIGN_UUID=0x10b,
           RESOURCE_CREATE_BLOB=0x10c, SET_SCANOUT_BLOB=0x10d, CTX_CREATE=0x200,
           CTX_DESTROY=0x201, CTX_ATTACH_RESOURCE=0x202, CTX_DETACH_RESOURCE=0x203,
           RESOURCE_CREATE_3D=0x204, TRANSFER_TO_HOST_3D=0x205, TRANSFER_FROM_HOST_3D=0x206,
           SUBMIT_3D=0x207, RESOURCE_MAP_BLOB=0x208, RESOURCE_UNMAP_BLOB=0x209,
           UPDATE_CURSOR=0x300, MOVE_CURSOR=0x301)


def hdr(cmd, flags=0, fence=0, ctx=0):
    return struct.pack("<IIQIB3x", CMD[cmd], flags, fence, ctx, 0)


def u32s(*values):
    return struct.pack("<%dI" % len(values), *values)


RECT = u32s(0, 0, 4, 4)
REQUESTS = {
    "get_display_info": hdr("GET_DISPLAY_INFO"),
    "create_2d": hdr("RESOURCE_CREATE_2D") + u32s(1, 2, 4, 4),
    "unref": hdr("RESOURCE_UNREF") + u32s(1, 0),
    "set_scanout": hdr("SET_SCANOUT") + RECT + u32s(0, 1),
    "flush": hdr("RESOURCE_FLUSH") + RECT + u32s(1, 0),
    "transfer_2d": hdr("TRANSFER_TO_HOST_2D") + RECT + struct.pack("<QII", 0, 1, 0),
    "attach_backing": hdr("RESOURCE_ATTACH_BACKING") + u32s(1, 1) + struct.pack("<QII", 0x2000, 64, 0),
    "detach_backing": hdr("RESOURCE_DETACH_BACKING") + u32s(1, 0),
    "capset_info": hdr("GET_CAPSET_INFO") + u32s(0, 0),
    "capset": hdr("GET_CAPSET") + u32s(2, 2),
    "edid": hdr("GET_EDID") + u32s(0, 0),
    "assign_uuid": hdr("RESOURCE_ASSIGN_UUID") + u32s(1, 0),
    "create_blob": hdr("RESOURCE_CREATE_BLOB", ctx=1) + u32s(2, 1, 1, 1) + struct.pack("<QQ", 0, 64)
    + struct.pack("<QII", 0x2000, 64, 0),
    "set_scanout_blob": hdr("SET_SCANOUT_BLOB") + RECT + u32s(0, 2, 4, 4, 2, 0) + u32s(16, 0, 0, 0) + u32s(0, 0, 0, 0),
    "ctx_create": hdr("CTX_CREATE", ctx=1) + u32s(4, 2) + b"test" + bytes(60),
    "ctx_destroy": hdr("CTX_DESTROY", ctx=1),
    "ctx_attach": hdr("CTX_ATTACH_RESOURCE", ctx=1) + u32s(1, 0),
    "ctx_detach": hdr("CTX_DETACH_RESOURCE", ctx=1) + u32s(1, 0),
    "create_3d": hdr("RESOURCE_CREATE_3D") + u32s(3, 2, 1, 2, 4, 4, 1, 1, 0, 0, 0, 0),
    "transfer_to_3d": hdr("TRANSFER_TO_HOST_3D", ctx=1) + u32s(0, 0, 0, 4, 4, 1) + struct.pack("<QIIII", 0, 3, 0, 16, 0),
    "transfer_from_3d": hdr("TRANSFER_FROM_HOST_3D", ctx=1) + u32s(0, 0, 0, 4, 4, 1) + struct.pack("<QIIII", 0, 3, 0, 16, 0),
    "submit_3d": hdr("SUBMIT_3D", flags=1, fence=5, ctx=1) + u32s(4, 0) + u32s(0),
    "map_blob": hdr("RESOURCE_MAP_BLOB") + u32s(2, 0) + struct.pack("<Q", 0),
    "unmap_blob": hdr("RESOURCE_UNMAP_BLOB") + u32s(2, 0),
    "update_cursor": hdr("UPDATE_CURSOR") + u32s(0, 10, 10, 0, 1, 0, 0, 0),
    "move_cursor": hdr("MOVE_CURSOR") + u32s(0, 20, 20, 0, 0, 0, 0, 0),
}


class Image:
    def __init__(self):
        self.mem = bytearray(0xc00)
        self.data = 0xc00

    def put(self, payload, size=None):
        addr = self.data
        size = max(size or 0, len(payload))
        end = addr + size
        if len(self.mem) < end:
            self.mem.extend(bytes(end - len(self.mem)))
        self.mem[addr:addr + len(payload)] = payload
        self.data = (end + 7) & ~7
        return addr

    def desc(self, base, index, addr, length, flags, nxt):
        struct.pack_into("<QIHH", self.mem, base + 16 * index, addr, length, flags, nxt)

    def chains(self, base, chains):
        """chains: list of lists of (addr, len, writable)."""
        index = 0
        for n, chain in enumerate(chains):
            head = index
            for i, (addr, length, writable) in enumerate(chain):
                more = i + 1 < len(chain)
                flags = (1 if more else 0) | (2 if writable else 0)
                self.desc(base, index, addr, length, flags, index + 1 if more else 0)
                index += 1
            struct.pack_into("<H", self.mem, base + 0x100 + 4 + 2 * n, head)
        struct.pack_into("<H", self.mem, base + 0x100 + 2, len(chains))

    def request_chains(self, names, response=408):
        out = []
        for name in names:
            req = REQUESTS[name]
            out.append([(self.put(req), len(req), False), (self.put(b"", response), response, True)])
        return out


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(bytes(data))


def main():
    for name, req in REQUESTS.items():
        write("corpus/decode_command/" + name, req)

    image = Image()
    image.chains(0, image.request_chains(["get_display_info"]))
    write("corpus/process_queue/display_info", image.mem)

    image = Image()
    image.put(b"", 0x2000 + 64 - image.data)
    image.chains(0, image.request_chains(
        ["create_2d", "attach_backing", "transfer_2d", "set_scanout", "flush", "assign_uuid",
         "edid", "unref"], response=1056))
    write("corpus/process_queue/framebuffer", image.mem)

    image = Image()
    image.put(b"", 0x2000 + 64 - image.data)
    image.chains(0, image.request_chains(["create_2d", "attach_backing", "transfer_2d"]))
    image.chains(0x800, image.request_chains(["update_cursor", "move_cursor"], response=24))
    write("corpus/process_queue/cursor", image.mem)

    image = Image()
    image.chains(0, image.request_chains(["ctx_create", "create_3d", "submit_3d", "capset_info", "create_blob"]))
    write("corpus/process_queue/three_d_on_2d", image.mem)

    image = Image()
    req = REQUESTS["get_display_info"]
    addr = image.put(req)
    resp = image.put(b"", 408)
    image.desc(0, 0, addr, len(req), 1, 1)
    image.desc(0, 1, resp, 408, 3, 0)
    struct.pack_into("<HH", image.mem, 0x100 + 2, 1, 0)
    write("corpus/process_queue/loop", image.mem)

    # rfb_viewer_input: a viewer's whole side of a connection.
    pixel_format = struct.pack(">BBBBHHHBBB3x", 16, 16, 1, 1, 31, 63, 31, 11, 5, 0)
    messages = (struct.pack(">BxH", 2, 2) + struct.pack(">ii", 0, -223)
                + struct.pack(">B3x", 0) + pixel_format
                + struct.pack(">BBHHHH", 3, 0, 0, 0, 800, 600)
                + struct.pack(">BBxxI", 4, 1, 0x61)
                + struct.pack(">BBHH", 5, 1, 10, 20)
                + struct.pack(">B3xI", 6, 3) + b"abc")
    write("corpus/rfb_viewer_input/v3_8", b"RFB 003.008\n\x01\x01" + messages)
    write("corpus/rfb_viewer_input/v3_3", b"RFB 003.003\n\x00" + messages)
    write("corpus/rfb_viewer_input/v3_7", b"RFB 003.007\n\x01\x01" + messages)

    relay_and_device_seeds()
    tube_seeds()
    frame_seeds()
    policy_seeds()
    display_seeds()


# --- vhost-user framing (frontend requests, relay and ray-gpu targets) ---
VU = dict(GET_FEATURES=1, SET_FEATURES=2, SET_OWNER=3, RESET_OWNER=4, SET_MEM_TABLE=5,
          SET_VRING_NUM=8, SET_VRING_ADDR=9, SET_VRING_BASE=10, GET_VRING_BASE=11,
          SET_VRING_KICK=12, SET_VRING_CALL=13, SET_VRING_ERR=14, GET_PROTOCOL_FEATURES=15,
          SET_PROTOCOL_FEATURES=16, GET_QUEUE_NUM=17, SET_VRING_ENABLE=18, GET_CONFIG=24,
          SET_CONFIG=25, GPU_SET_SOCKET=33, RESET_DEVICE=34, GET_MAX_MEM_SLOTS=36,
          ADD_MEM_REG=37, REM_MEM_REG=38, SET_STATUS=39, GET_STATUS=40)
V1, REPLY, NEED_REPLY = 0x1, 0x4, 0x8
# Descriptor kinds of the targets' spec byte (bits 2-3).
RAM, EVENTFD, SOCKET, DEVNULL = 0, 1, 2, 3
USER = 0x7f0000000000
RAM_BYTES = 0x10000


def vu(name, payload=b"", flags=V1):
    return struct.pack("<III", VU[name], flags, len(payload)) + payload


def chunk(message, fds=0, kind=RAM):
    """One write of the frontend: spec byte, u16 length, bytes."""
    return struct.pack("<BH", (kind << 2) | fds, len(message)) + message


def u64(v):
    return struct.pack("<Q", v)


def region(gpa=0, size=RAM_BYTES, user=USER, offset=0):
    return struct.pack("<QQQQ", gpa, size, user, offset)


def vring_state(index, num):
    return struct.pack("<II", index, num)


def vring_addr(index, desc, used, avail):
    return struct.pack("<IIQQQQ", index, 0, desc, used, avail, 0)


NEGOTIATE = [
    chunk(vu("GET_FEATURES")),
    chunk(vu("GET_PROTOCOL_FEATURES")),
    # MQ | REPLY_ACK | CONFIG | CONFIGURE_MEM_SLOTS
    chunk(vu("SET_PROTOCOL_FEATURES", u64(0x1 | 0x8 | 0x200 | 0x8000))),
    chunk(vu("SET_FEATURES", u64((1 << 32) | (1 << 30) | (1 << 28) | (1 << 29)))),
    chunk(vu("SET_OWNER")),
    chunk(vu("GET_QUEUE_NUM")),
    chunk(vu("GET_MAX_MEM_SLOTS")),
]
MEMORY = [chunk(vu("SET_MEM_TABLE", struct.pack("<II", 1, 0) + region()), fds=1, kind=RAM)]


def ring(index, base):
    return [
        chunk(vu("SET_VRING_NUM", vring_state(index, 16))),
        chunk(vu("SET_VRING_ADDR", vring_addr(index, USER + base, USER + base + 0x200,
                                               USER + base + 0x100))),
        chunk(vu("SET_VRING_BASE", vring_state(index, 0))),
        chunk(vu("SET_VRING_CALL", u64(index)), fds=1, kind=EVENTFD),
        chunk(vu("SET_VRING_KICK", u64(index)), fds=1, kind=EVENTFD),
        chunk(vu("SET_VRING_ENABLE", vring_state(index, 1))),
    ]


CONFIG = [
    chunk(vu("GET_CONFIG", struct.pack("<III", 0, 24, 0) + bytes(24))),
    chunk(vu("SET_CONFIG", struct.pack("<III", 4, 4, 0) + struct.pack("<I", 1))),
]
DISPLAY = [chunk(vu("GPU_SET_SOCKET"), fds=1, kind=SOCKET)]
STATUS = [
    chunk(vu("SET_STATUS", u64(0xf))),
    chunk(vu("GET_STATUS")),
    chunk(vu("GET_VRING_BASE", vring_state(0, 0))),
]
HOTPLUG = [
    chunk(vu("ADD_MEM_REG", u64(0) + region(gpa=0x100000, offset=0)), fds=1, kind=RAM),
    chunk(vu("REM_MEM_REG", u64(0) + region(gpa=0x100000, offset=0)), fds=1, kind=RAM),
]
NEED_REPLY_ACKED = [
    chunk(vu("SET_VRING_NUM", vring_state(1, 64), flags=V1 | NEED_REPLY)),
    chunk(vu("SET_VRING_ENABLE", vring_state(1, 0), flags=V1 | NEED_REPLY)),
]
BAD = [
    chunk(vu("SET_VRING_KICK", u64(0)), fds=1, kind=DEVNULL),
]


def relay_and_device_seeds():
    sessions = {
        "negotiate": NEGOTIATE,
        "boot": NEGOTIATE + MEMORY + ring(0, 0) + ring(1, 0x800) + CONFIG + DISPLAY + STATUS,
        "hotplug": NEGOTIATE + HOTPLUG + STATUS,
        "need_reply": NEGOTIATE + NEED_REPLY_ACKED + DISPLAY,
        "bad_fd": NEGOTIATE + BAD,
        "reset": NEGOTIATE + MEMORY + ring(0, 0) + [chunk(vu("RESET_OWNER")), chunk(vu("RESET_DEVICE"))]
        + ring(0, 0),
        "partial": NEGOTIATE + [chunk(vu("SET_MEM_TABLE", struct.pack("<II", 1, 0) + region())[:20])],
    }
    for name, writes in sessions.items():
        data = b"".join(writes)
        # mode byte: bit 0 = guest RAM is the given memfd (ray-gpu's usual case).
        write("corpus/relay_frontend_request/" + name, b"\x01" + data)
        if name in ("boot", "negotiate"):
            write("corpus/relay_frontend_request/" + name + "_any_memfd", b"\x00" + data)
        # vhost_user_request: guest RAM first (a GET_DISPLAY_INFO and a cursor move on the
        # rings laid out as for process_queue), then the same session.
        image = Image()
        image.chains(0, image.request_chains(["get_display_info", "create_2d"]))
        image.chains(0x800, image.request_chains(["move_cursor"], response=24))
        ram = bytes(image.mem)
        write("corpus/vhost_user_request/" + name, struct.pack("<H", len(ram)) + ram + data)

    # relay_backend_reply: rounds of (selector, u64 parameter[, fd spec, reply]).
    def reply(code, payload, flags=V1 | REPLY, fds=0, kind=RAM):
        return struct.pack("<B", (kind << 2) | fds) + struct.pack("<III", code, flags, len(payload)) + payload

    def rnd(selector, param=0, answer=None):
        return struct.pack("<BQ", selector, param) + (answer or b"")

    negotiate = (rnd(0, 0, reply(1, u64((1 << 30) | (1 << 32))))
                 + rnd(1, 0, reply(15, u64(0xffff)))
                 + rnd(9, 0x8 | 0x200))
    config_ok = rnd(6, 23 << 32, reply(24, struct.pack("<III", 0, 24, 0) + bytes(range(24))))
    rounds = {
        "negotiate": b"\x00" + negotiate,
        "all_replies": b"\x01" + rnd(2, 0, reply(17, u64(2))) + rnd(3, 0, reply(36, u64(8)))
        + rnd(4, 0, reply(40, u64(0xf))) + rnd(5, 1, reply(11, vring_state(1, 7)))
        + config_ok + rnd(6, 0, reply(24, struct.pack("<III", 0, 0, 0)))
        + rnd(7, 1 << 32, reply(2, u64(0))) + rnd(8, 255, reply(8, u64(0))),
        "wrong_code": b"\x01" + rnd(2, 0, reply(18, u64(2))),
        "reply_with_fd": b"\x01" + rnd(2, 0, reply(17, u64(2), fds=1, kind=EVENTFD)),
        "wrong_vring_index": b"\x01" + rnd(5, 3, reply(11, vring_state(4, 0))),
        "config_bad_size": b"\x01" + rnd(6, 23 << 32, reply(24, struct.pack("<III", 0, 23, 0) + bytes(24))),
        "oversized": b"\x01" + rnd(2, 0, struct.pack("<BIII", 0, 17, V1 | REPLY, 0x10000)),
        "truncated": b"\x01" + rnd(2, 0, struct.pack("<BIII", 0, 17, V1 | REPLY, 8) + b"\x02\x00"),
        "unasked_reply_flags": b"\x00" + rnd(4, 0, reply(40, u64(0), flags=V1)),
    }
    for name, data in rounds.items():
        write("corpus/relay_backend_reply/" + name, data)


def tube_seeds():
    import json
    # flags byte: bit 0 = ToGpu; bits 1-2 = descriptors attached; bits 3-4 = accepted.
    from_gpu = {
        "ready": {"Ready": {"pid_in_namespace": 1, "landlock_enforced": True, "renderer": "virgl"}},
        "frame": {"Frame": [{"Pixels": {"generation": 3, "width": 800, "height": 600,
                                        "rect": {"x": 0, "y": 0, "width": 16, "height": 16}}},
                            {"Moved": {"generation": 1, "x": 3, "y": 4}},
                            {"commands_answered": 5, "fences_pending": 0}]},
        "frame_cursor_image": {"Frame": ["Unchanged",
                                         {"Image": {"generation": 2, "x": 1, "y": 1, "hot_x": 0,
                                                    "hot_y": 0, "pixels": [0, 1, 2, 3]}},
                                         {"commands_answered": 0, "fences_pending": 1}]},
        "screenshot": {"Screenshot": {"width": 800, "height": 600}},
        "blocked": {"BlockedSyscall": {"nr": 41, "args": [2, 1, 0, 0, 0, 0]}},
        "error": {"Error": "renderer failed"},
        "report": {"Report": {"files": [{"path": "/dev/null", "kind": "c", "writable": True}],
                              "fds": [[3, "socket:[1]"]], "rlimits": [["NOFILE", 64, None]],
                              "cgroup": "/rayos/gpu", "uid": 65534, "gid": 65534}},
    }
    to_gpu = {
        "start": {"Start": {"policy_name": "gpu_device", "seccomp_filter": [32, 4, 21],
                            "report_blocked_syscalls": False,
                            "landlock": {"read_only": ["/usr/lib"], "read_write": [], "list_only": []},
                            "renderer": "TwoD", "vhost_user_fd": 0,
                            "display": {"width": 800, "height": 600}}},
        "report": "Report",
        "screenshot": "Screenshot",
        "frame_new_buffer": {"Frame": {"since": 3, "cursor_since": 1, "new_buffer": 1920000}},
        "shutdown": "Shutdown",
    }
    for name, msg in from_gpu.items():
        write("corpus/tube_message/from_gpu_" + name, b"\x00" + json.dumps(msg).encode())
    for name, msg in to_gpu.items():
        flags = 0x01 | (0x02 | 0x08 if name == "start" else 0)
        write("corpus/tube_message/to_gpu_" + name, bytes([flags]) + json.dumps(msg).encode())
    write("corpus/tube_message/from_gpu_unexpected_fd", b"\x02" + json.dumps(from_gpu["error"]).encode())


def frame_seeds():
    def frame_pixels(width, height, x, y, w, h, generation=1):
        return struct.pack("<BQII", 2, generation, width, height) + struct.pack("<IIII", x, y, w, h)

    cursor_image = struct.pack("<BQIIII", 3, 1, 10, 10, 2, 3) + struct.pack("<H", 16384)
    seeds = {
        "pixels_full": struct.pack("<I", 64 * 64 * 4) + frame_pixels(64, 64, 0, 0, 64, 64) + cursor_image,
        "pixels_rect": struct.pack("<I", 4096) + frame_pixels(800, 600, 10, 20, 16, 16) + struct.pack("<BQII", 2, 1, 5, 6),
        "too_large": struct.pack("<I", 4096) + struct.pack("<BQ", 3, 800 * 600 * 4) + struct.pack("<BQ", 1, 9),
        "false_too_large": struct.pack("<I", 4096) + struct.pack("<BQ", 3, 100) + b"\x00",
        "disabled": struct.pack("<I", 0) + struct.pack("<BQ", 1, 7) + b"\x00",
        "rect_outside": struct.pack("<I", 1 << 19) + frame_pixels(800, 600, 790, 0, 16, 16) + cursor_image[:-2] + struct.pack("<H", 100),
    }
    for name, data in seeds.items():
        write("corpus/frame_reply/" + name, data)


def policy_seeds():
    for name in sorted(os.listdir("../policies/x86_64")):
        if name.endswith(".policy"):
            with open("../policies/x86_64/" + name, "rb") as f:
                write("corpus/policy_parser/" + name, f.read())
    write("corpus/policy_parser/syntax", b"""# every form of the grammar
read: 1
write: arg0 == 1 || arg0 == 2
mmap: arg2 in ~PROT_EXEC && arg3 & MAP_SHARED
ioctl: arg1 == FIONBIO; return EPERM
openat: arg2 in ~(O_WRONLY|O_RDWR|O_CREAT) ; return ENOENT
fcntl: arg1 != F_SETFL \\
    && arg1 <= 1024
clone3: return ENOSYS
@frequency ./frequency.txt
""")
    write("corpus/policy_parser/include", b"@include gpu_common.policy\nsocket: arg0 == AF_UNIX\n")
    write("corpus/policy_parser/redefined", b"read: 1\nread: return EPERM\nread: arg0 == 0\n")


def display_seeds():
    info = bytearray(24 + 16 * 24)
    struct.pack_into("<I", info, 0, 0x1101)
    struct.pack_into("<IIIIII", info, 24, 0, 0, 800, 600, 1, 0)
    ops = (struct.pack("<BBHH", 0, 0, 64, 48)                       # scanout 0: 64x48
           + struct.pack("<BBHHHHB", 1, 0, 0, 0, 16, 8, 0)          # update 16x8 at 0,0
           + struct.pack("<BBHHHHB", 2, 0, 60, 40, 4, 8, 0)         # update_owned at the edge
           + struct.pack("<BBHHHHB", 1, 0, 60, 40, 8, 8, 0)         # outside
           + struct.pack("<BBHHHHBH", 1, 0, 0, 0, 2, 2, 1, 15)      # wrong pixel count
           + struct.pack("<BBHHHHB", 3, 0, 10, 10, 1, 1, 0)         # cursor image
           + struct.pack("<BBHHB", 4, 0, 11, 12, 1)                 # cursor move
           + struct.pack("<BBHHB", 4, 0, 0, 0, 0)                   # cursor hide
           + struct.pack("<BB", 5, 0)                               # display info
           + struct.pack("<BBHH", 0, 17, 64, 48)                    # no such scanout
           + struct.pack("<BBHH", 0, 0, 0, 0)                       # disable scanout 0
           + struct.pack("<BBHHHHB", 1, 0, 0, 0, 1, 1, 0))          # update while disabled
    write("corpus/display_socket/session", bytes(info) + ops)
    big = (struct.pack("<BBHH", 0, 1, 1024, 512)
           + struct.pack("<BBHHHHB", 2, 1, 0, 0, 1024, 512, 0))     # 2 MiB: two strips
    write("corpus/display_socket/strips", bytes(info) + big)


if __name__ == "__main__":
    main()
