#!/usr/bin/env python3
"""Talks to a dst exporter directly, bypassing the gateway, for the TLS and
ACL tests:

    grpc_probe.py negotiate|write|read ADDRESS [--cert F --key F] [--ca F]

Prints "ok" (negotiate: "ok read_only=true|false") or the gRPC status code
name of the call or of the transaction (e.g. PERMISSION_DENIED,
UNAVAILABLE). The dst protocol modules come from PYTHONPATH (protoc
--python_out of proto/)."""
import argparse
import sys

import grpc
from dst.v1 import exporter_pb2


def channel(args):
    if args.ca is None:
        return grpc.insecure_channel(args.address)
    key = open(args.key, "rb").read() if args.key else None
    cert = open(args.cert, "rb").read() if args.cert else None
    creds = grpc.ssl_channel_credentials(
        root_certificates=open(args.ca, "rb").read(),
        private_key=key, certificate_chain=cert)
    options = [("grpc.ssl_target_name_override", "localhost")]
    return grpc.secure_channel(args.address, creds, options)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["negotiate", "write", "read"])
    parser.add_argument("address")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--ca")
    args = parser.parse_args()
    ch = channel(args)
    try:
        if args.action == "negotiate":
            call = ch.unary_unary(
                "/dst.v1.Exporter/Negotiate",
                request_serializer=exporter_pb2.NegotiateRequest.SerializeToString,
                response_deserializer=exporter_pb2.NegotiateReply.FromString)
            reply = call(exporter_pb2.NegotiateRequest(client_id="probe"),
                         timeout=5)
            print("ok read_only=%s" % str(reply.geometry.read_only).lower())
            return
        stream = ch.stream_stream(
            "/dst.v1.Exporter/Stream",
            request_serializer=exporter_pb2.RequestBatch.SerializeToString,
            response_deserializer=exporter_pb2.ReplyBatch.FromString)
        request = exporter_pb2.Request(id=1, length=512)
        if args.action == "write":
            request.op = exporter_pb2.OP_WRITE
            request.data = b"p" * 512
        else:
            request.op = exporter_pb2.OP_READ
        access = "rw" if args.action == "write" else "ro"
        replies = stream(iter([exporter_pb2.RequestBatch(requests=[request])]),
                         timeout=5, metadata=[("dst-access", access)])
        for batch in replies:
            for reply in batch.replies:
                print("ok" if reply.status == 0 else
                      [c.name for c in grpc.StatusCode
                       if c.value[0] == reply.status][0])
                return
        print("NO_REPLY")
    except grpc.RpcError as error:
        print(error.code().name)


if __name__ == "__main__":
    sys.exit(main())
