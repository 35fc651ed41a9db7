#!/usr/bin/env python3
"""Runs moto (DynamoDB, Secrets Manager, SQS, ...) on 127.0.0.1.

Binds the given port (default 0: an ephemeral one), prints one line
`listening on http://127.0.0.1:<port>` once it accepts connections, then serves
until its standard input closes, so that it dies with the process that started
it, even when that one crashes.
"""

import argparse
import copy
import sys
import threading
from typing import Any

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.server import ThreadedMotoServer

_TRANSACTIONS = threading.Lock()


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """TransactWriteItems as moto 5.2 does it, with one change: a cancelled
    transaction restores the items it touched, instead of moto's backup of every
    table it names, deep-copied once per action and put back whole. That backup
    made a 100-action transaction cost 100 copies of the table (seconds once a
    test's table holds a synced org), and putting a table back dropped the writes
    other requests made to it meanwhile. Transactions are serialised among
    themselves, as DynamoDB isolates them."""
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    with _TRANSACTIONS:
        touched: list[tuple[Any, Any, Any, Any]] = []  # (table, hash, range, item before)
        target_items: set[tuple[str, str]] = set()
        errors: list[tuple[Any, Any, Any]] = []

        def rollback() -> None:
            for table, hash_key, range_key, before in reversed(touched):
                if before is None:
                    table.delete_item(hash_key, range_key)
                elif range_key is not None:
                    table.items[hash_key][range_key] = before
                else:
                    table.items[hash_key] = before

        for item in transact_items:
            original_item = None
            if len(list(item.keys())) > 1:
                raise TransactWriteSingleOpException
            try:
                op_type, op = next(iter(item.items()))
                if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                    raise ValueError("Unsupported transaction operation")
                table_name = op["TableName"]
                table = self.get_table(table_name)
                if op_type == "Put":
                    attrs = op["Item"]
                    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                    if table.range_key_attr is not None:
                        key[table.range_key_attr] = attrs[table.range_key_attr]
                else:
                    key = op["Key"]
                unique = (str(table_name), str(dict(sorted(key.items()))))
                if unique in target_items:
                    raise MultipleTransactionsException()
                target_items.add(unique)

                names = op.get("ExpressionAttributeNames")
                values = op.get("ExpressionAttributeValues")
                condition = op.get("ConditionExpression")
                current = self.get_item(table_name, key)
                if condition is not None:
                    if not get_filter_expression(condition, names, values).expr(current):
                        if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                            original_item = current.to_json()["Attributes"]
                        raise ConditionalCheckFailed(item=original_item)

                hash_key, range_key = self.get_keys_value(table, key)
                if op_type != "ConditionCheck":
                    touched.append((table, hash_key, range_key, copy.deepcopy(current)))
                if op_type == "Put":
                    self.put_item(table_name, op["Item"], condition_expression=condition,
                                  expression_attribute_names=names,
                                  expression_attribute_values=values)
                elif op_type == "Delete":
                    self.delete_item(table_name, key, condition_expression=condition,
                                     expression_attribute_names=names,
                                     expression_attribute_values=values)
                elif op_type == "Update":
                    self.update_item(table_name, key, update_expression=op["UpdateExpression"],
                                     condition_expression=condition,
                                     expression_attribute_names=names,
                                     expression_attribute_values=values)
                errors.append((None, None, None))
            except (MultipleTransactionsException, MockValidationException):
                rollback()
                raise
            except ConditionalCheckFailed as e:
                errors.append(("ConditionalCheckFailed", str(e.message), original_item))
            except Exception as e:  # noqa: BLE001 - reported per action, as moto does
                errors.append((type(e).__name__, str(e), original_item))

        if any(code is not None for code, _, _ in errors):
            rollback()
            raise TransactionCanceledException(errors)


DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


# A query of the table's own key reads one partition in DynamoDB; moto 5.2 reads
# (and sorts) every item of the table for it, so a query's cost grows with the
# table. That hid what matters in a store that holds a synced org: how many
# requests a design makes, not how big the table is. While such a query runs,
# `all_items` answers with the queried partition only (the filtering and sorting
# that follow are moto's own). Index queries keep moto's scan.
_PARTITION = threading.local()
_all_items = Table.all_items
_query = Table.query


def all_items(self: Table) -> list[Any]:
    scope = getattr(_PARTITION, "scope", None)
    if scope is None or scope[0] is not self:
        return _all_items(self)
    partition = self.items.get(scope[1])  # `items` is a defaultdict: no insert
    if partition is None:
        return []
    if not self.range_key_attr:
        return [partition]
    return sorted(partition.values(), key=lambda item: item.range_key)


def query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
    if index_name or hash_key is None:
        return _query(self, hash_key, *args, **kwargs)
    _PARTITION.scope = (self, hash_key)
    try:
        return _query(self, hash_key, *args, **kwargs)
    finally:
        _PARTITION.scope = None


Table.all_items = all_items  # type: ignore[method-assign]
Table.query = query  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"listening on http://{host}:{port}", flush=True)

    sys.stdin.read()  # returns at EOF: the parent closed the pipe or died
    server.stop()


if __name__ == "__main__":
    main()
