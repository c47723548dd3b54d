"""The catalog service: a plain grpcio server of `catalog.Catalog` on 127.0.0.1:$PORT."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from shoplib.server import listen_port, log, on_stop_signals
from shopproto import catalog_pb2, catalog_pb2_grpc

from catalog.data import PRODUCTS, product


class CatalogService(catalog_pb2_grpc.CatalogServicer):
    def GetProduct(
        self, request: catalog_pb2.GetProductRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.Product:
        found = product(request.id)
        if found is None:
            context.set_code(grpc.StatusCode.NOT_FOUND)
            context.set_details(f"no product {request.id}")
            return catalog_pb2.Product()
        return found

    def ListProducts(
        self, request: catalog_pb2.ListProductsRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.ListProductsResponse:
        return catalog_pb2.ListProductsResponse(products=PRODUCTS)


class AccessLog(grpc.ServerInterceptor):
    """One log line per call: method, status, time and the x-request-id it carried."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        metadata = dict(handler_call_details.invocation_metadata or ())
        request_id = metadata.get("x-request-id", "-")
        inner = handler.unary_unary

        def logged(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.monotonic()
            failed = False
            try:
                return inner(request, context)
            except Exception:
                failed = True
                raise
            finally:
                code = context.code()
                if isinstance(code, grpc.StatusCode):
                    status = code.name
                else:
                    status = "UNKNOWN" if failed else "OK"
                elapsed = (time.monotonic() - started) * 1000
                log("catalog", f'"{method}" {status} {elapsed:.1f}ms x-request-id={request_id}')

        return grpc.unary_unary_rpc_method_handler(
            logged,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def main() -> None:
    port = listen_port()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), interceptors=[AccessLog()])
    catalog_pb2_grpc.add_CatalogServicer_to_server(CatalogService(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    on_stop_signals(lambda: server.stop(grace=2))
    log("catalog", f"listening on grpc://127.0.0.1:{port}")
    server.wait_for_termination()
    log("catalog", "stopped")
