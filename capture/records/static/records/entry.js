/* Data entry: branching and calculations as the user types, repeating rows, date pickers,
 * missing-data codes and keyboard shortcuts. The server re-evaluates everything on save and
 * is the authority (capture/records/logic.py); this only shows the user what it will do.
 */
(function () {
  "use strict";
  var form = document.getElementById("ecrf");
  if (!form) return;
  var logic = JSON.parse(document.getElementById("ecrf-logic").textContent);
  var events = JSON.parse(document.getElementById("ecrf-events").textContent);
  var X = window.CaptureExpr;
  // A page that cannot save (data-server-logic: a read-only role, a locked form, a de-identified
  // page) shows the server's stored calculations and branching: its inputs may hold shifted
  // dates and no identifiers, so recomputing from them would show wrong values (an age from a
  // hidden date of birth comes out blank), and a stored value is what an export gives.
  var serverLogic = form.hasAttribute("data-server-logic");

  function byName(name) {
    return form.querySelectorAll('[name="' + name + '"]');
  }
  function read(name) {
    var mc = form.querySelector('[name="' + name + '__mc"]');
    if (mc && mc.value) return mc.value;
    var els = byName(name);
    if (!els.length) return "";
    var first = els[0];
    if (first.type === "checkbox") {
      var list = [];
      els.forEach(function (el) { if (el.checked) list.push(el.value); });
      return list;
    }
    if (first.type === "radio") {
      var found = "";
      els.forEach(function (el) { if (el.checked) found = el.value; });
      return found;
    }
    return first.getAttribute("data-format") ? toIso(first.value.trim(), first.getAttribute("data-format")) : first.value.trim();
  }
  // A date typed day or month first (REDCap's date_dmy / date_mdy) as ISO, as the server reads it.
  function toIso(text, order) {
    var m = /^(\d{1,2})[-\/.](\d{1,2})[-\/.](\d{4})(?:[ T](.+))?$/.exec(text);
    if (!m) return text;
    var day = order === "dmy" ? m[1] : m[2], month = order === "dmy" ? m[2] : m[1];
    var iso = m[3] + "-" + ("0" + month).slice(-2) + "-" + ("0" + day).slice(-2);
    return m[4] ? iso + " " + m[4] : iso;
  }
  function fromIso(iso, order) {
    var m = /^(\d{4})-(\d{2})-(\d{2})(.*)$/.exec(iso);
    if (!m || !order) return iso;
    return (order === "dmy" ? m[3] + "-" + m[2] : m[2] + "-" + m[3]) + "-" + m[1] + m[4];
  }
  function rowsOf(group) {
    var box = form.querySelector('fieldset[data-group="' + group + '"]');
    return box ? Array.prototype.slice.call(box.querySelectorAll("tbody tr[data-row]")) : [];
  }
  function calcText(result, item) {
    if (X.isBlank(result)) return "";
    if (result === true) return "1";
    if (result === false) return "0";
    if (typeof result === "number" && (item.dt === "integer" || item.dt === "decimal") && item.dp !== null) {
      return X.toText(X.round(result, item.dp, "round"));
    }
    return X.toText(result);
  }
  function setCalc(name, text) {
    var el = form.querySelector('input.calc[name="' + name + '"]');
    if (el && el.value !== text) el.value = text;
  }
  function showBlock(el, show) {
    if (!el) return;
    if (el.tagName === "TD") el.classList.toggle("is-hidden", !show);
    else el.hidden = !show;
  }

  function blank(value) {
    return value === "" || value === null || value === undefined || (Array.isArray(value) && !value.length);
  }
  function labelOf(block) {
    var q = block.querySelector(".q");
    if (!q && block.tagName === "TD") {
      var th = block.closest("table").querySelectorAll("thead th")[block.cellIndex];
      q = th && th.querySelector(".q");
    }
    if (!q) return block.getAttribute("data-name");
    var ref = q.querySelector(".ref");
    return q.textContent.replace(ref ? ref.textContent : "", "").replace("*", "").replace("calculated", "").trim();
  }
  function isShown(el) {
    return el.tagName === "TD" ? !el.classList.contains("is-hidden") : !el.hidden;
  }
  // Every named control's value, to put back what the user changed when they cancel a hide.
  function snapshot() {
    var names = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (el.name && el.name.indexOf("__") !== 0 && el.type !== "file" && el.type !== "hidden") names[el.name] = true;
    });
    var values = {};
    Object.keys(names).forEach(function (n) { values[n] = JSON.stringify(read(n)); });
    return values;
  }
  function write(name, value) {
    byName(name).forEach(function (el) {
      if (el.type === "radio") el.checked = el.value === value;
      else if (el.type === "checkbox") el.checked = Array.isArray(value) && value.indexOf(el.value) >= 0;
      else el.value = Array.isArray(value) ? "" : fromIso(value, el.getAttribute("data-format"));
    });
  }
  function clearField(name) {
    write(name, "");
    var mc = form.querySelector('[name="' + name + '__mc"]');
    if (mc) mc.value = "";
  }

  // Branching and calculations over the page's values. `mode` says what may happen to a field
  // that holds a value and is about to be hidden (saving would erase it, as REDCap does):
  //   "init"   the page as the server sent it: hide it (the server hid it already);
  //   "input"  the user is typing: leave it shown until they leave the field ("change");
  //   "change" ask first; Cancel puts back the answer that hid it.
  function recompute(mode) {
    if (serverLogic) return true;
    var pending = [];
    var view = {};
    logic.fields.forEach(function (n) { view[n] = read(n); });
    var rows = {};
    Object.keys(logic.groups).forEach(function (g) {
      rows[g] = rowsOf(g).map(function (tr) {
        var row = { __el: tr, __i: tr.getAttribute("data-row") };
        logic.groups[g].forEach(function (n) { row[n] = read(g + "-" + row.__i + "-" + n); });
        return row;
      });
      logic.groups[g].forEach(function (n) { view[n] = rows[g].map(function (r) { return r[n]; }); });
    });
    function toggle(block, name, show) {
      if (!block) return;
      if (!show && mode !== "init" && isShown(block) && !blank(read(name))) {
        pending.push({ block: block, name: name });
        if (mode === "input") return;  // decided when the user leaves the field
      }
      showBlock(block, show);
    }
    logic.items.forEach(function (item) {
      if (!item.g) {
        if (item.c) {
          var text = calcText(X.evaluate(item.c, view, events, logic.missing), item);
          setCalc(item.n, text);
          view[item.n] = text;
        }
        if (item.b) {
          var show = X.truthy(X.evaluate(item.b, view, events, logic.missing));
          toggle(document.getElementById("f-" + item.n), item.n, show);
          if (!show) view[item.n] = "";
        }
        return;
      }
      (rows[item.g] || []).forEach(function (row) {
        var rv = Object.assign({}, view, row);
        if (item.c) {
          var t = calcText(X.evaluate(item.c, rv, events, logic.missing), item);
          setCalc(item.g + "-" + row.__i + "-" + item.n, t);
          row[item.n] = rv[item.n] = t;
        }
        if (item.b) {
          var visible = X.truthy(X.evaluate(item.b, rv, events, logic.missing));
          toggle(row.__el.querySelector('td[data-name="' + item.n + '"]'), item.g + "-" + row.__i + "-" + item.n, visible);
          if (!visible) row[item.n] = "";
        }
      });
      view[item.n] = (rows[item.g] || []).map(function (r) { return r[item.n]; });
    });
    if (mode === "change" && pending.length) {
      var names = pending.map(function (p) { return "\u2013 " + labelOf(p.block); });
      var erase = window.confirm(
        "This answer hides " + (pending.length === 1 ? "a field that holds a value" : "fields that hold values") +
        ", and saving will erase " + (pending.length === 1 ? "it" : "them") + " (the audit trail keeps the old value):\n" +
        names.join("\n") + "\n\nHide and erase? Cancel keeps your earlier answer."
      );
      if (erase) {
        pending.forEach(function (p) { clearField(p.name); });
        return recompute("change");
      }
      Object.keys(last).forEach(function (n) {
        if (JSON.stringify(read(n)) !== last[n]) write(n, JSON.parse(last[n]));
      });
      recompute("init");  // what could not be put back (a removed row) hides as the server will
      return false;
    }
    if (mode !== "input") last = snapshot();
    return true;
  }
  var last = {};

  function renumber(box) {
    box.querySelectorAll("tbody tr[data-row]").forEach(function (tr, k) {
      var cell = tr.querySelector("td.num");
      if (cell) cell.textContent = String(k + 1);
    });
    var max = parseInt(box.getAttribute("data-max"), 10);
    var add = box.querySelector(".add-row");
    if (add && max) add.disabled = box.querySelectorAll("tbody tr[data-row]").length >= max;
  }

  form.addEventListener("input", function () { recompute("input"); });
  // Ctrl+S in a field that is still being typed in: ask about the fields its answer hides first.
  form.addEventListener("submit", function (e) {
    if (!recompute("change")) e.preventDefault();
  });
  form.addEventListener("change", function (e) {
    var t = e.target;
    if (t.classList.contains("mc")) {
      // A chosen missing-data code replaces the value; clearing it clears the field.
      var name = t.name.slice(0, -4);
      var inputs = byName(name);
      inputs.forEach(function (el) {
        if (el.type === "radio" || el.type === "checkbox") { if (t.value) el.checked = false; }
        else if (el.tagName === "SELECT") { if (t.value) el.value = ""; }
        else if (t.value) el.value = t.value;
        else if (logic.missing.indexOf(el.value) >= 0) el.value = "";
      });
    } else if (t.classList.contains("picker")) {
      var text = t.previousElementSibling;
      if (text) { text.value = fromIso(t.value.replace("T", " "), text.getAttribute("data-format")); }
    } else if (t.name && !t.classList.contains("mc")) {
      var code = form.querySelector('[name="' + t.name + '__mc"]');
      if (code && code.value && (t.type === "radio" || t.type === "checkbox" || t.tagName === "SELECT")) code.value = "";
    }
    recompute("change");
  });
  form.addEventListener("click", function (e) {
    var t = e.target;
    if (t.classList.contains("pick")) {
      var picker = t.previousElementSibling, text = picker && picker.previousElementSibling;
      if (!picker) return;
      var typed = text ? toIso(text.value.trim(), text.getAttribute("data-format")) : "";
      if (/^\d{4}-\d{2}-\d{2}/.test(typed)) picker.value = typed.replace(" ", "T");
      if (picker.showPicker) picker.showPicker(); else picker.focus();
    } else if (t.classList.contains("clear")) {
      t.parentNode.querySelectorAll("input[type=radio]").forEach(function (el) { el.checked = false; });
      recompute("change");
    } else if (t.classList.contains("add-row")) {
      var g = t.getAttribute("data-group");
      var box = form.querySelector('fieldset[data-group="' + g + '"]');
      var tpl = document.getElementById("tpl-" + g);
      var next = 0;
      box.querySelectorAll("tbody tr[data-row]").forEach(function (tr) {
        next = Math.max(next, parseInt(tr.getAttribute("data-row"), 10) + 1);
      });
      var holder = document.createElement("tbody");
      holder.innerHTML = tpl.innerHTML.replace(/__i__/g, String(next));
      var row = holder.querySelector("tr");
      box.querySelector("tbody").appendChild(row);
      renumber(box);
      var first = row.querySelector("input:not([type=hidden]):not(.calc):not(.picker), select:not(.mc)");
      if (first) first.focus();
      recompute("change");
    } else if (t.classList.contains("remove-row")) {
      var tr = t.closest("tr"), fs = t.closest("fieldset");
      tr.parentNode.removeChild(tr);
      renumber(fs);
      recompute("change");
    }
  });
  form.addEventListener("keydown", function (e) {
    if ((e.ctrlKey || e.metaKey) && (e.key === "s" || e.key === "S")) {
      e.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.submit();
      return;
    }
    // Enter in a one-line field moves on instead of saving a half-filled form by accident.
    var t = e.target;
    if (e.key === "Enter" && t.tagName === "INPUT" && t.type !== "submit" && t.type !== "button") {
      e.preventDefault();
      var focusable = Array.prototype.filter.call(
        form.querySelectorAll("input, select, textarea, button"),
        function (el) { return el.tabIndex >= 0 && !el.disabled && el.type !== "hidden" && el.offsetParent !== null; }
      );
      var at = focusable.indexOf(t);
      if (at >= 0 && at + 1 < focusable.length) focusable[at + 1].focus();
    }
  });
  form.querySelectorAll("fieldset.repeat").forEach(renumber);
  recompute("init");
  // After a refused save, the first thing that needs attention has the focus: the reason box
  // when the reason is missing (the save bar's own error is not a field's), else the first field
  // marked with an error.
  var reasonError = document.getElementById("reason-error");
  var firstError = Array.prototype.filter.call(form.querySelectorAll(".error"), function (el) {
    return !el.closest(".savebar");
  })[0];
  if (reasonError) {
    document.getElementById("id_reason").focus();
  } else if (firstError) {
    var holder = firstError.closest(".field, .mrow, td, fieldset.repeat");
    var input = holder && holder.querySelector(
      "input:not([type=hidden]):not(.picker):not(.calc):not([disabled]), select:not(.mc), textarea"
    );
    if (input) input.focus();
  }
  var skip = document.getElementById("skip-to-form");
  if (skip) {
    skip.addEventListener("click", function (e) {
      var first = Array.prototype.filter.call(
        form.querySelectorAll("input:not([type=hidden]), select, textarea"),
        function (el) { return el.tabIndex >= 0 && !el.disabled && el.offsetParent !== null; }
      )[0];
      if (first) { e.preventDefault(); first.focus(); }
    });
  }
  document.documentElement.classList.add("js");
})();
