/* Titan console, Constructor: the canvas model and its checks in the browser (no DOM here).
 *
 * A model is {name, nodes: [node], edges: [{source, target}]} where edges name node keys
 * (parent -> child); a node's fields are text as typed ("" means the default), see
 * web/titan_web/constructor_model.py. validate() gives immediate feedback while the user
 * builds; the console re-checks the generated YAML and is the authority.
 */
(function () {
  "use strict";

  const KIND_NAMES = { run: "Task", service: "Service", gate: "Gate" };
  const ID_BASE = { run: "task", service: "service", gate: "gate" };
  const TEXT_FIELDS = ["id", "library", "content", "content_name", "command", "args",
    "requirement", "priority", "delay", "retries", "timeout", "worker", "env",
    "hitl_message", "max_wait_seconds", "port", "max_restarts", "health", "message",
    "external"];
  const INT = /^[+-]?\d+$/;
  const FLOAT = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
  const TAG = /^[A-Za-z0-9_.:-]{1,64}$/;
  const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
  const RESERVED_ENV = ["TITAN_JOB_ID", "TITAN_RUN_ID", "TITAN_ATTEMPT", "TITAN_TOKEN"];
  const BAD_ID = /[\s/]|[\u0000-\u001f\u007f]/;

  function blankNode(key, kind, id) {
    const node = { key: key, kind: kind, source: "library", affinity: false };
    TEXT_FIELDS.forEach(function (name) { node[name] = ""; });
    node.id = id || "";
    return node;
  }

  /** The node as the console reads it: known fields only, text as text. */
  function cleanNode(raw) {
    const node = blankNode(String(raw.key), KIND_NAMES[raw.kind] ? raw.kind : "run", "");
    TEXT_FIELDS.forEach(function (name) {
      const value = raw[name];
      node[name] = value === undefined || value === null ? "" : String(value);
    });
    node.source = ["library", "paste", "command"].indexOf(raw.source) >= 0 ? raw.source : "library";
    node.affinity = raw.affinity === true;
    if (isFinite(raw.x) && isFinite(raw.y) && raw.x !== null && raw.y !== null) {
      node.x = Number(raw.x);
      node.y = Number(raw.y);
    }
    return node;
  }

  function nextId(model, kind) {
    const used = new Set(model.nodes.map(function (n) { return n.id; }));
    for (let i = 1; ; i += 1) {
      const id = ID_BASE[kind] + "-" + i;
      if (!used.has(id)) { return id; }
    }
  }

  function parentKeys(model, key) {
    return model.edges.filter(function (e) { return e.target === key; })
      .map(function (e) { return e.source; });
  }

  /** The first cycle found, as node keys [a, b, ..., a] (each waits for the one before),
   *  or null. Iterative depth-first search from parent to child. */
  function findCycle(model) {
    const children = new Map(model.nodes.map(function (n) { return [n.key, []]; }));
    model.edges.forEach(function (e) {
      if (children.has(e.source) && children.has(e.target)) { children.get(e.source).push(e.target); }
    });
    const state = new Map();  // 1: on the path, 2: done
    for (const start of children.keys()) {
      if (state.has(start)) { continue; }
      const path = [start];
      const stack = [children.get(start)[Symbol.iterator]()];
      state.set(start, 1);
      while (stack.length) {
        const step = stack[stack.length - 1].next();
        if (step.done) {
          state.set(path.pop(), 2);
          stack.pop();
          continue;
        }
        const child = step.value;
        if (state.get(child) === 1) {
          return path.slice(path.indexOf(child)).concat([child]);
        }
        if (!state.has(child)) {
          state.set(child, 1);
          path.push(child);
          stack.push(children.get(child)[Symbol.iterator]());
        }
      }
    }
    return null;
  }

  function named(node) {
    return node.id ? "'" + node.id + "'" : "a " + KIND_NAMES[node.kind].toLowerCase() + " without an id";
  }

  function numberProblem(node, field, label, rule) {
    const text = String(node[field] || "").trim();
    if (!text) { return null; }
    const isInt = INT.test(text);
    const value = Number(text);
    const ok = {
      count: isInt && value >= 0,
      port: isInt && value >= 0 && value <= 65535,
      seconds: FLOAT.test(text) && isFinite(value) && value >= 0,
      positive: FLOAT.test(text) && isFinite(value) && value > 0,
    }[rule];
    if (ok) { return null; }
    const want = {
      count: "a whole number ≥ 0", port: "a port from 0 to 65535 (0: any free port)",
      seconds: "a number of seconds ≥ 0", positive: "a number of seconds > 0",
    }[rule];
    return "Job " + named(node) + ": " + label + " must be " + want + ", not '" + text + "'.";
  }

  function nodeProblems(node) {
    const out = [];
    const runs = node.kind !== "gate";
    if (!node.id) {
      out.push("A " + KIND_NAMES[node.kind].toLowerCase() + " has no id: give it one.");
    } else if (BAD_ID.test(node.id)) {
      out.push("Job " + named(node) + ": an id cannot hold spaces, '/' or control characters.");
    }
    if (runs && node.source === "library" && !node.library) {
      out.push("Job " + named(node) + ": choose a script from the library, paste one, or give a command.");
    } else if (runs && node.source === "paste" && !node.content.trim()) {
      out.push("Job " + named(node) + ": paste the script it runs.");
    } else if (runs && node.source === "command" && !node.command.trim()) {
      out.push("Job " + named(node) + ": give the command it runs.");
    }
    if (runs && node.source === "paste" && /[/\\]/.test(node.content_name)) {
      out.push("Job " + named(node) + ": the script's file name cannot hold '/'.");
    }
    const numbers = [["priority", "the priority", "count"], ["delay", "the delay", "seconds"]];
    if (runs) {
      numbers.push(["retries", "retries", "count"], ["timeout", "the timeout", "positive"]);
      if (node.requirement && !TAG.test(node.requirement)) {
        out.push("Job " + named(node) + ": the worker tag must be one word of letters, digits, '_', '.', ':' or '-' (such as GPU).");
      }
    }
    if (node.kind === "service") {
      numbers.push(["port", "the port", "port"], ["max_restarts", "max restarts", "count"]);
    }
    if (node.kind === "gate" || node.hitl_message) {
      numbers.push(["max_wait_seconds", "the longest wait for a decision", "positive"]);
    }
    numbers.forEach(function (spec) {
      const problem = numberProblem(node, spec[0], spec[1], spec[2]);
      if (problem) { out.push(problem); }
    });
    if (runs) {
      node.env.split("\n").forEach(function (line, i) {
        if (!line.trim()) { return; }
        const name = line.split("=")[0].trim();
        if (line.indexOf("=") < 0 || !ENV_NAME.test(name)) {
          out.push("Job " + named(node) + ": environment line " + (i + 1) + " must read NAME=value.");
        } else if (RESERVED_ENV.indexOf(name) >= 0) {
          out.push("Job " + named(node) + ": the worker sets " + name + " itself.");
        }
      });
    }
    node.external.split(/\s+/).forEach(function (id) {
      if (id && id.indexOf("/") >= 0) {
        out.push("Job " + named(node) + ": '" + id + "' is not a job id (no '/').");
      }
    });
    return out;
  }

  /** Every problem found, each {message, keys: [node keys], edges: [[source, target]]}. */
  function validate(model) {
    const problems = [];
    const name = model.name || "";
    if (!name.trim()) {
      problems.push({ message: "Give the pipeline a name.", keys: [], edges: [] });
    } else if (name !== name.trim() || /[\u0000-\u001f\u007f]/.test(name)) {
      problems.push({ message: "The pipeline's name must be one line, without spaces around it.", keys: [], edges: [] });
    }
    if (!model.nodes.length) {
      problems.push({ message: "Add a job: a pipeline needs at least one.", keys: [], edges: [] });
    }
    const byId = new Map();
    model.nodes.forEach(function (node) {
      nodeProblems(node).forEach(function (message) {
        problems.push({ message: message, keys: [node.key], edges: [] });
      });
      if (node.id) {
        if (!byId.has(node.id)) { byId.set(node.id, []); }
        byId.get(node.id).push(node.key);
      }
    });
    byId.forEach(function (keys, id) {
      if (keys.length > 1) {
        problems.push({ message: keys.length + " jobs are called '" + id + "': ids must be unique.", keys: keys, edges: [] });
      }
    });
    const cycle = findCycle(model);
    if (cycle) {
      const ids = new Map(model.nodes.map(function (n) { return [n.key, n.id || "(no id)"]; }));
      const edges = [];
      for (let i = 0; i + 1 < cycle.length; i += 1) { edges.push([cycle[i], cycle[i + 1]]); }
      problems.push({
        message: "Cycle: " + cycle.map(function (k) { return ids.get(k); }).join(" → ") +
          " (each waits for the one before it). Remove one of these dependencies.",
        keys: cycle.slice(0, -1), edges: edges,
      });
    }
    return problems;
  }

  /** The label on the canvas: the id, and under it what the job runs. */
  function label(node) {
    let what;
    if (node.kind === "gate") {
      what = node.message ? "? " + node.message : "gate";
    } else if (node.source === "library") {
      what = node.library || "no script";
    } else if (node.source === "paste") {
      what = (node.content_name || (node.id || "script") + ".py") + " (pasted)";
    } else {
      what = node.command ? "$ " + node.command : "no command";
    }
    what = what.replace(/\s+/g, " ");
    if (what.length > 26) { what = what.slice(0, 25) + "…"; }
    let id = node.id || "(no id)";
    if (id.length > 26) { id = id.slice(0, 25) + "…"; }
    return id + "\n" + what;
  }

  window.TitanModel = {
    KIND_NAMES: KIND_NAMES, TEXT_FIELDS: TEXT_FIELDS, blankNode: blankNode,
    cleanNode: cleanNode, nextId: nextId, parentKeys: parentKeys, findCycle: findCycle,
    validate: validate, label: label,
  };
})();
