/* Titan console, Constructor: what goes through the console (window.TitanIO).
 *
 * - render(app): debounced POST /constructor/render of the canvas model; the answer (YAML,
 *   Python, the console's verdict) goes to app.judged() unless a newer change was sent since.
 * - The script library: uploads (a file, or a pasted script saved now), the list refreshed.
 * - Load YAML (POST /constructor/parse), drafts (/constructor/drafts), deploy
 *   (POST /constructor/deploy, then to the run's page), the Copy buttons.
 * Every POST carries the page's CSRF token; answers are JSON, and a request that failed
 * becomes {ok: false, error} so that every caller has one path.
 */
(function () {
  "use strict";

  const $ = function (id) { return document.getElementById(id); };
  const RENDER_DELAY = 200;
  let renderTimer = null;
  let renderSeq = 0;

  function token() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function api(method, url, body) {
    const init = { method: method, credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": token() } };
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (response) {
      return response.text().then(function (text) {
        let data;
        try {
          data = JSON.parse(text);
        } catch (e) {
          data = { ok: false, error: "The console answered HTTP " + response.status +
            " without the expected data" + (response.status === 403 || response.status === 401
              ? ": sign in again, or reload the page." : ".") };
        }
        data.status = response.status;
        return data;
      });
    }, function (error) {
      return { ok: false, status: 0, error: "The console did not answer (" + error.message + ")." };
    });
  }

  function render(app) {
    const seq = ++renderSeq;  // from now on, an answer to an earlier request is stale
    clearTimeout(renderTimer);
    renderTimer = setTimeout(function () {
      api("POST", "/constructor/render", { model: app.snapshot() }).then(function (answer) {
        if (seq === renderSeq) { app.judged(answer); }
      });
    }, RENDER_DELAY);
  }

  function say(text) {
    const toast = $("c-said");
    toast.textContent = text;
    toast.hidden = !text;
    clearTimeout(say.timer);
    say.timer = setTimeout(function () { toast.hidden = true; }, 5000);
  }

  // -- the script library ----------------------------------------------------------------------

  function refreshScripts() {
    return api("GET", "/constructor/scripts").then(function (answer) {
      if (!answer.ok) { return; }
      const select = $("f-library");
      const chosen = select.value;
      while (select.options.length > 2) { select.remove(1); }
      answer.scripts.forEach(function (script) {
        select.insertBefore(new Option(script.name, script.name), select.lastElementChild);
      });
      select.value = chosen;
    });
  }

  /** Upload a script (a FormData or {name, content}); asks before replacing one of the same
   *  name. Resolves to the stored name, or null. */
  function upload(body, name, replace) {
    const said = $("f-library-said");
    said.textContent = "Uploading " + name + "…";
    if (replace) {
      if (body instanceof FormData) { body.set("replace", "1"); } else { body.replace = true; }
    }
    return api("POST", "/constructor/scripts", body).then(function (answer) {
      if (answer.exists && !replace) {
        if (window.confirm("The script library has a script " + name + " already. Replace it?")) {
          return upload(body, name, true);
        }
        said.textContent = "Not uploaded: the library keeps its " + name + ".";
        return null;
      }
      if (!answer.ok) {
        said.textContent = "Not uploaded: " + (answer.error || "the console refused it.");
        return null;
      }
      said.textContent = "Uploaded " + answer.name + " to the script library.";
      return refreshScripts().then(function () { return answer.name; });
    });
  }

  function uploadFile(app) {
    const input = $("f-upload");
    const file = input.files && input.files[0];
    if (!file || !app.current()) { return; }
    const form = new FormData();
    form.append("file", file);
    form.append("name", file.name);
    upload(form, file.name, false).then(function (name) {
      if (name) { app.setFields({ source: "library", library: name }); }
      input.value = "";
    });
  }

  function savePasted(app) {
    const node = app.current();
    if (!node || !node.content.trim()) {
      $("f-library-said").textContent = "Paste a script first.";
      return;
    }
    const name = (node.content_name || (node.id || "script") + ".py").trim();
    upload({ name: name, content: node.content }, name, false).then(function (stored) {
      if (stored) {
        app.setFields({ source: "library", library: stored });
        say("Saved " + stored + " to the script library; the job runs it from there.");
      }
    });
  }

  // -- Load YAML -------------------------------------------------------------------------------

  function bindLoad(app) {
    const dialog = $("c-load");
    const problems = $("c-load-problems");
    $("c-load-open").addEventListener("click", function () {
      problems.textContent = "";
      dialog.showModal();
      $("c-load-text").focus();
    });
    $("c-load-file").addEventListener("change", function (e) {
      const file = e.target.files && e.target.files[0];
      if (file) { file.text().then(function (text) { $("c-load-text").value = text; }); }
    });
    $("c-load-go").addEventListener("click", function () {
      const text = $("c-load-text").value;
      problems.textContent = "";
      api("POST", "/constructor/parse", { yaml: text }).then(function (answer) {
        if (answer.ok) {
          app.load(answer.model);
          dialog.close();
          say("Loaded " + answer.model.nodes.length + " jobs from the YAML.");
          return;
        }
        (answer.problems || [{ message: answer.error, line: 0 }]).forEach(function (p) {
          const item = document.createElement("li");
          item.textContent = (p.line ? "Line " + p.line + ": " : "") + p.message;
          problems.appendChild(item);
        });
      });
    });
  }

  // -- drafts ----------------------------------------------------------------------------------

  function bindDrafts(app) {
    const dialog = $("c-drafts");
    const said = $("c-drafts-said");
    $("c-drafts-open").addEventListener("click", function () {
      said.textContent = "";
      if (!$("c-draft-name").value) {
        $("c-draft-name").value = app.model.name.replace(/[^A-Za-z0-9 _.-]+/g, "-").replace(/^[^A-Za-z0-9]+/, "").slice(0, 80);
      }
      dialog.showModal();
      listDrafts(app);
    });
    $("c-draft-save").addEventListener("click", function () {
      const name = $("c-draft-name").value.trim();
      api("POST", "/constructor/drafts", { name: name, model: app.snapshot() }).then(function (answer) {
        said.textContent = answer.ok ? "Saved the draft " + answer.draft.name + "." : answer.error;
        if (answer.ok) { listDrafts(app); }
      });
    });
  }

  function listDrafts(app) {
    const list = $("c-draft-list");
    api("GET", "/constructor/drafts").then(function (answer) {
      list.textContent = "";
      if (!answer.ok) {
        list.textContent = answer.error;
        return;
      }
      if (!answer.drafts.length) {
        const none = document.createElement("li");
        none.className = "muted";
        none.textContent = "No drafts yet.";
        list.appendChild(none);
      }
      answer.drafts.forEach(function (draft) { list.appendChild(draftRow(app, draft)); });
    });
  }

  function draftRow(app, draft) {
    const item = document.createElement("li");
    const text = document.createElement("div");
    const name = document.createElement("b");
    name.textContent = draft.name;
    const meta = document.createElement("span");
    meta.className = "muted";
    meta.textContent = draft.jobs + (draft.jobs === 1 ? " job" : " jobs") + " · saved " +
      new Date(draft.saved_at * 1000).toLocaleString();
    text.append(name, meta);
    const open = document.createElement("button");
    open.type = "button";
    open.className = "btn-small";
    open.textContent = "Open";
    open.setAttribute("aria-label", "Open the draft " + draft.name);
    open.addEventListener("click", function () {
      api("GET", "/constructor/drafts/" + encodeURIComponent(draft.name)).then(function (answer) {
        if (!answer.ok) { $("c-drafts-said").textContent = answer.error; return; }
        app.load(answer.model);
        $("c-drafts").close();
        say("Opened the draft " + draft.name + ".");
      });
    });
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "btn-small btn-danger";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", "Delete the draft " + draft.name);
    remove.addEventListener("click", function () {
      if (remove.textContent === "Delete") { remove.textContent = "Delete: sure?"; return; }
      api("POST", "/constructor/drafts/" + encodeURIComponent(draft.name) + "/delete").then(function (answer) {
        $("c-drafts-said").textContent = answer.ok ? "Deleted the draft " + draft.name + "." : answer.error;
        listDrafts(app);
      });
    });
    item.append(text, open, remove);
    return item;
  }

  // -- deploy, copy ----------------------------------------------------------------------------

  function bindDeploy(app) {
    const button = $("c-deploy");
    button.addEventListener("click", function () {
      button.disabled = true;
      button.textContent = "Deploying…";
      api("POST", "/constructor/deploy", { model: app.snapshot() }).then(function (answer) {
        if (answer.ok) {
          say("Deployed: run " + answer.run_id + ".");
          window.location.assign(answer.url);
          return;
        }
        button.textContent = "Deploy";
        app.judged({ ok: false, problems: answer.problems || [], error: answer.error });
      });
    });
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(function () { return true; }, function () { return copyByHand(text); });
    }
    return Promise.resolve(copyByHand(text));
  }

  function copyByHand(text) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "sr-only";
    document.body.appendChild(area);
    area.select();
    let done = false;
    try { done = document.execCommand("copy"); } catch (e) { done = false; }
    area.remove();
    return done;
  }

  function bindCopy() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        copy($(button.getAttribute("data-copy")).textContent).then(function (done) {
          button.textContent = done ? "Copied" : "Select and copy";
          setTimeout(function () { button.textContent = "Copy"; }, 1500);
        });
      });
    });
  }

  function bind(app) {
    $("f-upload").addEventListener("change", function () { uploadFile(app); });
    $("f-save-script").addEventListener("click", function () { savePasted(app); });
    bindLoad(app);
    bindDrafts(app);
    bindDeploy(app);
    bindCopy();
  }

  window.TitanIO = {
    api: api, render: render, bind: bind, say: say,
    chooseUpload: function () { $("f-upload").click(); },
  };
})();
