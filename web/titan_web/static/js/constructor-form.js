/* Titan console, Constructor: the form of the selected job, and the checks as the page shows
 * them (the verdict line, the list of problems, the job picker). Methods of the App that
 * constructor.js defines (window.TitanApp); constructor.js starts it once every script ran.
 */
(function () {
  "use strict";

  const M = window.TitanModel;
  const app = window.TitanApp.prototype;
  const $ = function (id) { return document.getElementById(id); };

  // -- the form --------------------------------------------------------------------------------

  app.fill = function () {
    const node = this.current();
    if (node !== this.filled) { $("f-library-said").textContent = ""; }
    this.filled = node;
    this.form.hidden = !node;
    $("c-none").hidden = !!node;
    $("c-remove").disabled = !node && this.cy.edges(":selected").empty();
    if (!node) { return; }
    this.form.querySelectorAll("[data-field]").forEach(function (el) {
      const field = el.getAttribute("data-field");
      if (el.type === "radio") {
        el.checked = node.source === el.value;
      } else if (el.type === "checkbox") {
        el.checked = !!node[field];
      } else if (field === "library") {
        ensureOption(el, node.library);
        el.value = node.library;
      } else {
        el.value = node[field] || "";
      }
    });
    this.showParts(node);
    this.fillParents(node);
    this.fillNodeProblems();
  };

  function ensureOption(select, value) {
    if (!value || Array.prototype.some.call(select.options, function (o) { return o.value === value; })) { return; }
    const option = document.createElement("option");
    option.value = value;
    option.textContent = value + " (not in the library)";
    select.insertBefore(option, select.lastElementChild);
  }

  app.showParts = function (node) {
    this.form.querySelectorAll("[data-for]").forEach(function (part) {
      part.hidden = part.getAttribute("data-for").split(" ").indexOf(node.kind) < 0;
    });
    this.form.querySelectorAll("[data-source]").forEach(function (part) {
      part.hidden = part.getAttribute("data-source") !== node.source;
    });
  };

  app.fillParents = function (node) {
    const list = $("f-parents");
    list.textContent = "";
    const parents = M.parentKeys(this.model, node.key);
    parents.forEach((key) => {
      const parent = this.node(key);
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = parent.id || "(no id)";
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "btn-small";
      remove.textContent = "×";
      remove.setAttribute("aria-label", "Remove the dependency on " + (parent.id || "(no id)"));
      remove.addEventListener("click", () => { this.removeEdge(key, node.key); this.fill(); });
      item.append(name, remove);
      list.appendChild(item);
    });
    if (!parents.length) {
      const none = document.createElement("li");
      none.className = "muted";
      none.textContent = "Nothing: it can start at once.";
      list.appendChild(none);
    }
    const add = $("f-add-parent");
    add.length = 1;
    this.model.nodes.forEach(function (other) {
      if (other.key === node.key || parents.indexOf(other.key) >= 0) { return; }
      add.add(new Option(other.id || "(no id)", other.key));
    });
  };

  app.fillNodeProblems = function () {
    const node = this.current();
    const list = $("f-problems");
    list.textContent = "";
    if (!node) { return; }
    this.problems().filter(function (p) { return p.keys.indexOf(node.key) >= 0; }).forEach(function (p) {
      const item = document.createElement("li");
      item.textContent = p.message;
      list.appendChild(item);
    });
  };

  app.onField = function (event) {
    const el = event.target;
    const field = el.getAttribute && el.getAttribute("data-field");
    const node = this.current();
    if (!field || !node) { return; }
    if (el.type === "radio" && !el.checked) { return; }
    if (field === "library" && el.value === "__upload__") {
      el.value = node.library;
      window.TitanIO.chooseUpload(this);
      return;
    }
    const value = el.type === "checkbox" ? el.checked : el.value;
    if (node[field] === value) { return; }
    node[field] = value;
    if (field === "kind") {
      this.cy.getElementById(node.key).classes("kind-" + value);
    }
    if (field === "kind" || field === "source") { this.showParts(node); }
    this.form.querySelectorAll('[data-field="' + field + '"]').forEach(function (other) {
      if (other !== el && other.type !== "radio" && other.type !== "checkbox") { other.value = value; }
    });
    this.refreshNode(node);
    this.changed();
  };

  app.refreshNode = function (node) {
    this.cy.getElementById(node.key).data(this.nodeData(node));
  };

  /** Set fields of the selected job from code ({library: NAME} after an upload). */
  app.setFields = function (values) {
    const node = this.current();
    if (!node) { return; }
    Object.assign(node, values);
    this.refreshNode(node);
    this.fill();
    this.changed();
  };


  app.fillPick = function () {
    const pick = $("c-pick");
    pick.length = 1;
    this.model.nodes.forEach(function (n) {
      pick.add(new Option((n.id || "(no id)") + " · " + M.KIND_NAMES[n.kind], n.key));
    });
    pick.value = this.selected || "";
  };

  app.showVerdict = function (problems) {
    const verdict = $("c-verdict");
    const list = $("c-problems");
    const root = $("constructor");
    list.textContent = "";
    let state;
    if (!this.model.nodes.length) {
      state = "empty";
      verdict.textContent = "Start with a job: click Task, Service or Gate on the left, or load a YAML pipeline.";
    } else if (this.local.length) {
      state = "problems";
      verdict.textContent = problems.length === 1 ? "1 thing to fix before deploying:" : problems.length + " things to fix before deploying:";
    } else if (this.server.pending) {
      state = "pending";
      verdict.textContent = "Checking with the console…";
    } else if (!this.server.ok) {
      state = "problems";
      verdict.textContent = "The console's check found " + (problems.length === 1 ? "1 problem:" : problems.length + " problems:");
    } else {
      state = "ok";
      verdict.textContent = "Ready to deploy: the console checked it as titanctl validate does." +
        (this.server.note ? " (" + this.server.note + ")" : "");
    }
    root.setAttribute("data-check", state);
    $("c-checks").setAttribute("data-check", state);
    if (state === "problems") {
      problems.forEach((p) => {
        const item = document.createElement("li");
        if (p.keys.length) {
          const go = document.createElement("button");
          go.type = "button";
          go.className = "ctor-link";
          go.textContent = p.message;
          go.addEventListener("click", () => { this.select(p.keys[0]); this.keepInView(p.keys[0]); });
          item.appendChild(go);
        } else {
          item.textContent = p.message;
        }
        list.appendChild(item);
      });
    }
    $("c-deploy").disabled = state !== "ok";
  };
})();
