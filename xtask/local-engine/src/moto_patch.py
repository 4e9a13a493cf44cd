"""The local endpoint's changes to moto, and the checks that moto still has what they rely on.

`local_engine::endpoint` embeds this file and runs it with the venv's python in place of `moto_server`:
`python -c <this file> -H 127.0.0.1 -p PORT`. It checks moto first, patches it, then runs moto's own server
`main`. Why the patch exists (both are about DynamoDB's TransactWriteItems):

1. Isolation. moto's TransactWriteItems snapshots each table it touches, applies the items one by one, and on a
   failed condition restores the snapshot. Its server is threaded, so a transaction that fails while another
   request commits restores a table state from before that commit: an acknowledged write vanishes (measured:
   concurrent appends to one aggregate lost events). Every request of the DynamoDB and DynamoDB Streams APIs, and
   every public method of both backends (CloudFormation calls them directly), therefore runs behind one lock:
   a GetRecords can never see the stream records of a transaction that is later cancelled, nor miss the
   committed record that would reuse their sequence numbers.
2. Cost. moto deep-copies every table a transaction touches (all its items and every stream record), so each
   append cost time in proportion to the table's whole history (50 writers x 20 rounds on one aggregate took
   380 s, most of it copying). Under the lock the snapshot can be exact and small: the items the transaction
   names, and the length of each touched table's stream. On failure the named items are put back as they were
   (absent ones removed) and each stream is cut back to its length, which is what restoring moto's whole-table
   copy did.
3. Lambda versions and aliases in CloudFormation. moto's CloudFormation creates an `AWS::Lambda::Version` but gives
   it no `Version` attribute and never publishes again on an update, and it knows no `AWS::Lambda::Alias` at all
   (a stack with one loses its outputs). The stack of an `aws` environment invokes every function through its
   `live` alias (see templates/functions.yaml.hbs), and the tests run that stack on this endpoint, so the patch
   models both as AWS does, through moto's own Lambda API: a Version publishes on create and on every update
   (AWS replaces it; the old one is retained as the template asks) and an Alias is created, re-pointed and
   deleted with moto's alias calls. moto re-evaluates a resource only when its own properties or the parameters
   it names change, which the template's alias satisfies (its description names the code key).

The patch reads and replaces moto internals that no moto release promises to keep. So before patching, `check()`
proves each of them exists and behaves as expected, on a private backend that is thrown away; if anything differs
it prints every difference on lines starting with `moto_patch:` and exits with EXIT_INCOMPATIBLE, before any server
starts. The Rust side turns that into `EndpointError::MotoIncompatible`. Bump PATCH_VERSION with any change here.
"""

import copy
import functools
import importlib
import inspect
import sys
import threading
import types

PATCH_VERSION = 3
# The moto release this patch was written and checked against; the pinned requirements install exactly this.
MOTO_VERSION = "5.2.5"
# The exit status of a refused start (kept equal to `endpoint::PATCH_EXIT_INCOMPATIBLE`).
EXIT_INCOMPATIBLE = 3
# The writes of TransactWriteItems; ConditionCheck writes nothing.
WRITES = ("Put", "Update", "Delete")
PROBE_ACCOUNT = "000000000000"


class Incompatible(Exception):
    """One moto internal is not what the patch relies on."""

    def __init__(self, internal, expected, found):
        super().__init__(f"{internal}: expected {expected}, found {found}")
        self.internal = internal


# ---------------------------------------------------------------------------------------------------------------
# The patch.


class TablesAreNotCopied:
    """Stands in for the `copy` module inside moto.dynamodb.models, whose only deep copy of a Table is the
    rollback snapshot of TransactWriteItems: tables are snapshotted item by item instead (see `snapshot`)."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(x, memo=None):
        from moto.dynamodb.models.table import Table

        return x if isinstance(x, Table) else copy.deepcopy(x, memo)


def snapshot(backend, transact_items):
    """The items a transaction names, as they are now, and the length of each touched table's stream.

    An entry is passed over only where moto itself writes nothing for it (each case says why); anything else that
    goes wrong raises, so a transaction never runs with part of its rollback missing.
    """
    from moto.dynamodb.exceptions import ResourceNotFoundException
    from moto.dynamodb.models.dynamo_type import DynamoType

    saved, streams = [], {}
    for entry in transact_items:
        if not isinstance(entry, dict) or len(entry) != 1:
            continue  # moto raises TransactWriteSingleOpException for it and writes nothing.
        op_type, op = next(iter(entry.items()))
        if op_type not in WRITES or not isinstance(op, dict):
            continue  # a ConditionCheck writes nothing; moto refuses any other operation name.
        name = op.get("TableName")
        key = op.get("Item" if op_type == "Put" else "Key")
        if name is None or not isinstance(key, dict):
            continue  # moto fails this entry on the same lookup, before writing.
        try:
            table = backend.get_table(name)  # a name or an ARN, as moto resolves it
        except ResourceNotFoundException:
            continue  # moto fails this entry on the same lookup, before writing.
        if table.hash_key_attr not in key or (
            table.range_key_attr is not None and table.range_key_attr not in key
        ):
            continue  # moto's key lookup (get_keys_value) refuses it, before writing.
        h = DynamoType(key[table.hash_key_attr])
        r = DynamoType(key[table.range_key_attr]) if table.range_key_attr is not None else None
        had_hash = h in table.items
        if r is None:
            current = table.items.get(h)
        else:
            current = table.items.get(h, {}).get(r)
        saved.append((table, h, r, had_hash, copy.deepcopy(current)))
        shard = table.stream_shard
        if shard is not None:
            streams.setdefault(id(table), (table, shard, len(shard.items)))
    return saved, streams


def restore(saved, streams):
    """Puts the named items back as `snapshot` found them and cuts each stream back to its length."""
    for table, h, r, had_hash, item in reversed(saved):
        if r is None:
            if item is None:
                table.items.pop(h, None)
            else:
                table.items[h] = item
        else:
            if item is None:
                table.items.get(h, {}).pop(r, None)
                if not had_hash and h in table.items and not table.items[h]:
                    table.items.pop(h)
            else:
                table.items[h][r] = item
    for table, shard, length in streams.values():
        # Under the lock nothing else writes, so the stream can only have grown by this transaction's records.
        if table.stream_shard is not shard or len(shard.items) < length:
            raise RuntimeError(
                f"moto_patch: the stream of table {table.name} changed under a cancelled transaction "
                f"(it had {length} records before it); its records cannot be rolled back"
            )
        del shard.items[length:]


def patched_transact_write_items(original):
    @functools.wraps(original)
    def transact_write_items(self, transact_items):
        saved, streams = snapshot(self, transact_items)
        try:
            return original(self, transact_items)
        except BaseException:
            restore(saved, streams)
            raise

    return transact_write_items


LOCK = threading.RLock()


def serialised(f):
    @functools.wraps(f)
    def locked(*args, **kwargs):
        with LOCK:
            return f(*args, **kwargs)

    return locked


def public_methods(cls):
    return [
        name
        for name, f in vars(cls).items()
        if isinstance(f, types.FunctionType) and not name.startswith("_")
    ]


def lambda_backend(account_id, region_name):
    from moto.awslambda.models import lambda_backends

    return lambda_backends[account_id][region_name]


def version_from_cloudformation(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    """Publishes the function's current code and settings, as AWS does for a new (or replaced) Version."""
    properties = cloudformation_json["Properties"]
    published = lambda_backend(account_id, region_name).publish_version(
        properties["FunctionName"], properties.get("Description", "")
    )
    version = cls({"Version": str(published.version)})
    version.arn = published.function_arn
    return version


def version_update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
    # AWS replaces a Version whose properties change; the template retains the old one, so publishing anew is all.
    return version_from_cloudformation(cls, new_resource_name, cloudformation_json, account_id, region_name)


def make_alias_model():
    """`AWS::Lambda::Alias` for moto's CloudFormation, backed by moto's Lambda alias calls."""
    from moto.core.common_models import CloudFormationModel

    class LambdaAliasResource(CloudFormationModel):
        # moto's model metaclass derives the service from the module name.
        __module__ = "moto.awslambda.models"

        def __init__(self, alias, function_name):
            self.alias = alias
            self.function_name = function_name

        @staticmethod
        def cloudformation_type():
            return "AWS::Lambda::Alias"

        @staticmethod
        def cloudformation_name_type():
            return "Name"

        @property
        def physical_resource_id(self):
            return self.alias.arn

        @classmethod
        def has_cfn_attr(cls, attr):
            return attr == "AliasArn"

        def get_cfn_attribute(self, attribute_name):
            return self.alias.arn

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
            p = cloudformation_json["Properties"]
            backend = lambda_backend(account_id, region_name)
            function = backend.get_function(p["FunctionName"]).function_name
            alias = backend.create_alias(
                p["Name"], function, str(p["FunctionVersion"]), p.get("Description", ""), p.get("RoutingConfig")
            )
            return cls(alias, function)

        @classmethod
        def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
            p = cloudformation_json["Properties"]
            alias = lambda_backend(account_id, region_name).update_alias(
                p["Name"],
                original_resource.function_name,
                str(p["FunctionVersion"]),
                p.get("Description", ""),
                p.get("RoutingConfig"),
            )
            return cls(alias, original_resource.function_name)

        def delete(self, account_id, region_name):
            # moto's stack deletion calls this on the resource it created (the template's properties are
            # unresolved there).
            from moto.awslambda.exceptions import UnknownFunctionException

            try:
                lambda_backend(account_id, region_name).delete_alias(self.alias.name, self.function_name)
            except UnknownFunctionException:
                pass  # deleted with its function already

    return LambdaAliasResource


def apply_lambda_cloudformation():
    import moto.cloudformation.parsing as parsing
    from moto.awslambda.models import LambdaVersion

    LambdaVersion.has_cfn_attr = classmethod(lambda cls, attr: attr == "Version")
    LambdaVersion.get_cfn_attribute = lambda self, attribute_name: self.version
    LambdaVersion.physical_resource_id = property(lambda self: self.arn)
    LambdaVersion.create_from_cloudformation_json = classmethod(version_from_cloudformation)
    LambdaVersion.update_from_cloudformation_json = classmethod(version_update)
    # Versions are retained (the template's DeletionPolicy); AWS deletes them with their function.
    LambdaVersion.delete_from_cloudformation_json = classmethod(lambda cls, *args, **kwargs: None)
    make_alias_model()
    # The model list is cached from CloudFormationModel.__subclasses__(); the new class must be seen.
    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()


def apply():
    """Patches moto (after `check()` passed)."""
    apply_lambda_cloudformation()
    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    models.copy = TablesAreNotCopied()
    DynamoDBBackend.transact_write_items = patched_transact_write_items(
        DynamoDBBackend.transact_write_items
    )
    for backend in (DynamoDBBackend, DynamoDBStreamsBackend):
        for name in public_methods(backend):
            setattr(backend, name, serialised(getattr(backend, name)))
    # The whole request, parsing and serialising included: a response is built from live items, which a
    # concurrent transaction could otherwise change (and roll back) while it is being written out.
    for handler in (DynamoHandler, DynamoDBStreamsHandler):
        handler.call_action = serialised(handler.call_action)


# ---------------------------------------------------------------------------------------------------------------
# The checks: every internal the patch replaces or reads, by its dotted name.


def check():
    """Returns the list of differences between this moto and what the patch relies on (empty when it fits)."""
    problems = []

    def expect(internal, expected, probe):
        try:
            found = probe()
        except Incompatible as e:
            problems.append(e)
            return None
        except Exception as e:  # the probe itself failed: report what failed, never pass over it
            problems.append(Incompatible(internal, expected, f"{type(e).__name__}: {e}"))
            return None
        return found

    import moto

    version = getattr(moto, "__version__", "unknown")
    if version != MOTO_VERSION:
        problems.append(
            Incompatible(
                "moto.__version__", MOTO_VERSION, f"{version} (this venv is not the pinned one)"
            )
        )

    def module_attr(module, name, kind):
        def probe():
            m = importlib.import_module(module)
            if not hasattr(m, name):
                raise Incompatible(f"{module}.{name}", kind, "no such name")
            return getattr(m, name)

        return expect(f"{module}.{name}", kind, probe)

    models_copy = module_attr("moto.dynamodb.models", "copy", "the `copy` module")
    if models_copy is not None and models_copy is not copy:
        problems.append(
            Incompatible(
                "moto.dynamodb.models.copy", "the `copy` module", repr(models_copy)
            )
        )
    backend_cls = module_attr("moto.dynamodb.models", "DynamoDBBackend", "a class")
    table_cls = module_attr("moto.dynamodb.models.table", "Table", "a class")
    shard_cls = module_attr("moto.dynamodb.models.table", "StreamShard", "a class")
    dynamo_type = module_attr("moto.dynamodb.models.dynamo_type", "DynamoType", "a class")
    not_found = module_attr(
        "moto.dynamodb.exceptions", "ResourceNotFoundException", "an exception class"
    )
    streams_cls = module_attr("moto.dynamodbstreams.models", "DynamoDBStreamsBackend", "a class")
    module_attr("moto.dynamodb.responses", "DynamoHandler", "a class")
    module_attr("moto.dynamodbstreams.responses", "DynamoDBStreamsHandler", "a class")
    module_attr("moto.server", "main", "a function")

    def method(cls, name, params):
        internal = f"{cls.__module__}.{cls.__qualname__}.{name}"
        expected = f"a method ({', '.join(params)})" if params else "a method"

        def probe():
            f = getattr(cls, name, None)
            if not callable(f):
                raise Incompatible(internal, expected, "no such method")
            if params:
                found = list(inspect.signature(f).parameters)
                if found[: len(params)] != list(params):
                    raise Incompatible(internal, expected, f"parameters ({', '.join(found)})")
            return f

        return expect(internal, expected, probe)

    if backend_cls is not None:
        method(backend_cls, "transact_write_items", ["self", "transact_items"])
        method(backend_cls, "get_table", ["self", "table_name"])
        method(backend_cls, "put_item", ["self", "table_name", "item_attrs"])
    if streams_cls is not None:
        # The API's operations, each put behind the lock as a public method of the class itself.
        for name in ("describe_stream", "list_streams", "get_shard_iterator", "get_records"):
            if method(streams_cls, name, []) is not None and name not in public_methods(streams_cls):
                problems.append(
                    Incompatible(
                        f"moto.dynamodbstreams.models.DynamoDBStreamsBackend.{name}",
                        "a plain function defined on the class (the lock wraps those)",
                        "inherited or not a function",
                    )
                )
    from moto.core.responses import BaseResponse

    for module, name in (
        ("moto.dynamodb.responses", "DynamoHandler"),
        ("moto.dynamodbstreams.responses", "DynamoDBStreamsHandler"),
    ):
        handler = getattr(importlib.import_module(module), name, None)
        if handler is not None and not (
            isinstance(handler, type) and issubclass(handler, BaseResponse)
        ):
            problems.append(
                Incompatible(f"{module}.{name}", "a subclass of BaseResponse", repr(handler))
            )
        elif handler is not None:
            method(handler, "call_action", ["self"])

    problems.extend(check_lambda_cloudformation(module_attr, method))
    if problems or None in (backend_cls, table_cls, shard_cls, dynamo_type, not_found):
        return problems
    problems.extend(probe_layout(backend_cls, table_cls, dynamo_type))
    if not problems:
        problems.extend(probe_transactions(backend_cls, table_cls, dynamo_type))
    return problems


def check_lambda_cloudformation(module_attr, method):
    """What `apply_lambda_cloudformation` reads or replaces."""
    problems = []
    module_attr("moto.core.common_models", "CloudFormationModel", "a class")
    version_cls = module_attr("moto.awslambda.models", "LambdaVersion", "a class")
    module_attr("moto.awslambda.models", "lambda_backends", "the Lambda backends")
    module_attr("moto.awslambda.exceptions", "UnknownFunctionException", "an exception class")
    lambda_cls = module_attr("moto.awslambda.models", "LambdaBackend", "a class")
    for name in ("get_model_list", "get_model_map"):
        f = module_attr("moto.cloudformation.parsing", name, "an lru_cache'd function")
        if f is not None and not hasattr(f, "cache_clear"):
            problems.append(
                Incompatible(f"moto.cloudformation.parsing.{name}", "an lru_cache'd function", repr(f))
            )
    if lambda_cls is not None:
        alias = ["self", "name", "function_name", "function_version", "description", "routing_config"]
        method(lambda_cls, "create_alias", alias)
        method(lambda_cls, "update_alias", alias)
        method(lambda_cls, "delete_alias", ["self", "name", "function_name"])
        method(lambda_cls, "publish_version", ["self", "function_name", "description"])
        method(lambda_cls, "get_function", ["self", "function_name_or_arn"])
    if version_cls is not None:
        try:
            version = version_cls({"Version": "1"})
            if version.version != "1":
                raise AttributeError(f"version is {version.version!r}")
        except Exception as e:
            problems.append(
                Incompatible(
                    "moto.awslambda.models.LambdaVersion",
                    "LambdaVersion({'Version': v}).version == v",
                    f"{type(e).__name__}: {e}",
                )
            )
    return problems


def probe_table(backend_cls, table_cls, range_key=True):
    """A private backend (not moto's global one) with one streamed table `probe` keyed `pk` (+ `sk`)."""
    backend = backend_cls("us-east-1", PROBE_ACCOUNT)
    schema = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attr = [{"AttributeName": "pk", "AttributeType": "S"}]
    if range_key:
        schema.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attr.append({"AttributeName": "sk", "AttributeType": "N"})
    table = table_cls(
        "probe",
        account_id=PROBE_ACCOUNT,
        region="us-east-1",
        schema=schema,
        attr=attr,
        streams={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    backend.tables["probe"] = table
    return backend, table


def probe_layout(backend_cls, table_cls, dynamo_type):
    """The data the snapshot reads: key attribute names, the nested item layout, the stream's record list."""
    problems = []
    T = "moto.dynamodb.models.table.Table"
    S = "moto.dynamodb.models.table.StreamShard"

    def fail(internal, expected, found):
        problems.append(Incompatible(internal, expected, found))

    try:
        backend, table = probe_table(backend_cls, table_cls)
        _, flat = probe_table(backend_cls, table_cls, range_key=False)
    except Exception as e:
        return [
            Incompatible(
                f"{T}.__init__",
                "Table(name, account_id=, region=, schema=, attr=, streams=)",
                f"{type(e).__name__}: {e}",
            )
        ]
    if getattr(table, "hash_key_attr", None) != "pk":
        fail(f"{T}.hash_key_attr", "the hash key's attribute name ('pk')", repr(getattr(table, "hash_key_attr", "no attribute")))
    if getattr(table, "range_key_attr", None) != "sk":
        fail(f"{T}.range_key_attr", "the range key's attribute name ('sk')", repr(getattr(table, "range_key_attr", "no attribute")))
    if not hasattr(flat, "range_key_attr") or flat.range_key_attr is not None:
        fail(f"{T}.range_key_attr", "None for a table without a range key", repr(getattr(flat, "range_key_attr", "no attribute")))
    shard = getattr(table, "stream_shard", "no attribute")
    if shard is None or shard == "no attribute":
        fail(f"{T}.stream_shard", "the StreamShard of a table with a stream", repr(shard))
        return problems
    if not isinstance(getattr(shard, "items", None), list):
        found = type(shard.items).__name__ if hasattr(shard, "items") else "no attribute `items`"
        fail(f"{S}.items", "a list of stream records", found)
        return problems
    if problems:
        return problems
    try:
        h, r = dynamo_type({"S": "a"}), dynamo_type({"N": "1"})
        if h != dynamo_type({"S": "a"}) or hash(h) != hash(dynamo_type({"S": "a"})):
            fail("moto.dynamodb.models.dynamo_type.DynamoType", "equal and equally hashed for equal values", "unequal")
        before = len(shard.items)
        backend.put_item("probe", {"pk": {"S": "a"}, "sk": {"N": "1"}, "v": {"N": "7"}})
        backend.put_item("probe", {"pk": {"S": "a"}, "sk": {"N": "2"}})
        flat_backend = backend_cls("us-east-1", PROBE_ACCOUNT)
        flat_backend.tables["probe"] = flat
        flat_backend.put_item("probe", {"pk": {"S": "a"}, "v": {"N": "7"}})
    except Exception as e:
        fail("moto.dynamodb.models.DynamoDBBackend.put_item", "to store an item in the probe table", f"{type(e).__name__}: {e}")
        return problems
    items = getattr(table, "items", None)
    nested = items.get(h) if isinstance(items, dict) else None
    if not isinstance(nested, dict) or r not in nested or nested[r].attrs.get("v") != dynamo_type({"N": "7"}):
        fail(f"{T}.items", "{hash DynamoType: {range DynamoType: Item}} for a table with a range key", describe(items))
    flat_items = getattr(flat, "items", None)
    if not isinstance(flat_items, dict) or getattr(flat_items.get(h), "attrs", {}).get("v") != dynamo_type({"N": "7"}):
        fail(f"{T}.items", "{hash DynamoType: Item} for a table without a range key", describe(flat_items))
    if len(shard.items) != before + 2:
        fail(f"{S}.items", "one stream record appended per write", f"{before} records, then {len(shard.items)} after two writes")
    return problems


def probe_transactions(backend_cls, table_cls, dynamo_type):
    """The patched TransactWriteItems on a private backend: a cancelled one changes nothing (items, stream, the
    Table object itself, so moto's own copy-and-restore is not in play), a committed one applies and streams."""
    internal = "moto.dynamodb.models.DynamoDBBackend.transact_write_items"
    problems = []
    original = backend_cls.transact_write_items
    backend_cls.transact_write_items = patched_transact_write_items(original)
    import moto.dynamodb.models as models

    saved_copy, models.copy = models.copy, TablesAreNotCopied()
    try:
        backend, table = probe_table(backend_cls, table_cls)
        backend.put_item("probe", {"pk": {"S": "a"}, "sk": {"N": "1"}, "v": {"N": "1"}})
        backend.put_item("probe", {"pk": {"S": "a"}, "sk": {"N": "2"}})
        shard = table.stream_shard
        before = len(shard.items)
        cancelled = False
        try:
            backend.transact_write_items(
                [
                    {"Update": {"TableName": "probe", "Key": {"pk": {"S": "a"}, "sk": {"N": "1"}},
                                "UpdateExpression": "SET v = :two",
                                "ExpressionAttributeValues": {":two": {"N": "2"}}}},
                    {"Put": {"TableName": table.table_arn, "Item": {"pk": {"S": "new"}, "sk": {"N": "1"}}}},
                    {"Put": {"TableName": "probe", "Item": {"pk": {"S": "a"}, "sk": {"N": "2"}},
                             "ConditionExpression": "attribute_not_exists(pk)"}},
                ]
            )
        except Exception as e:
            cancelled = type(e).__name__ == "TransactionCanceledException"
            if not cancelled:
                problems.append(Incompatible(internal, "TransactionCanceledException for a failed condition", f"{type(e).__name__}: {e}"))
        if not cancelled and not problems:
            problems.append(Incompatible(internal, "TransactionCanceledException for a failed condition", "the transaction committed"))
        h = dynamo_type({"S": "a"})
        if backend.tables.get("probe") is not table:
            problems.append(Incompatible("moto.dynamodb.models.copy", "the only way TransactWriteItems snapshots a table (copy.deepcopy)", "the table object was replaced by a copy on rollback"))
        elif table.items[h][dynamo_type({"N": "1"})].attrs.get("v") != dynamo_type({"N": "1"}):
            problems.append(Incompatible(internal, "a cancelled transaction's update rolled back", describe(table.items)))
        elif dynamo_type({"S": "new"}) in table.items:
            problems.append(Incompatible(internal, "a cancelled transaction's put (by table ARN) rolled back", describe(table.items)))
        elif len(shard.items) != before:
            problems.append(Incompatible("moto.dynamodb.models.table.StreamShard.items", "no stream record left by a cancelled transaction", f"{len(shard.items) - before} left"))
        if problems:
            return problems
        backend.transact_write_items(
            [{"Put": {"TableName": "probe", "Item": {"pk": {"S": "b"}, "sk": {"N": "1"}}}}]
        )
        if dynamo_type({"S": "b"}) not in table.items or len(shard.items) != before + 1:
            problems.append(Incompatible(internal, "a committed transaction applied and streamed", describe(table.items)))
    except Exception as e:
        problems.append(Incompatible(internal, "to run on a private probe backend", f"{type(e).__name__}: {e}"))
    finally:
        backend_cls.transact_write_items = original
        models.copy = saved_copy
    return problems


def describe(x):
    text = repr(x)
    return text if len(text) < 200 else text[:200] + "..."


def main(argv):
    problems = check()
    if problems:
        import moto

        found = getattr(moto, "__version__", "unknown")
        print(
            f"moto_patch: the installed moto ({found}) lacks what the local endpoint's patch (version "
            f"{PATCH_VERSION}, written for moto {MOTO_VERSION}) relies on; the server was not started:",
            file=sys.stderr,
        )
        for p in problems:
            print(f"moto_patch:   {p}", file=sys.stderr)
        print(
            "moto_patch: delete the endpoint's venv to reinstall the pinned moto; to move to another moto, "
            "update xtask/local-engine/src/moto_patch.py and its checks",
            file=sys.stderr,
        )
        sys.stderr.flush()
        sys.exit(EXIT_INCOMPATIBLE)
    apply()
    from moto.server import main as server_main

    server_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
