#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (corpus/<target>/). Run from fuzz/.

process_queue seeds are guest-memory images laid out as the target expects: control queue
descriptor table at 0x0, available ring at 0x100, used ring at 0x200; the cursor queue's at
0x800/0x900/0xa00; request and response buffers from 0xc00 on.
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


if __name__ == "__main__":
    main()
