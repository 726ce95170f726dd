/*
 * gridflow docs: draws every ```mermaid block with the vendored mermaid (no network).
 *
 * Material's own mermaid integration scales every diagram down to the page width (a
 * large state diagram then has labels a few pixels high) and keeps the SVG in a closed
 * shadow root. Here a diagram is drawn at its natural size inside a box that scrolls
 * sideways when the diagram is wider than the page; a button fits it to the width (an
 * overview) and back. The SVG stays in the page, so it can be searched and measured.
 *
 * The Markdown fence `mermaid` is rendered by pymdownx.superfences as
 * <pre class="gridflow-mermaid"><code>...</code></pre> (see mkdocs.yml).
 */
(function () {
  "use strict";

  var SOURCE = "pre.gridflow-mermaid";
  var counter = 0;

  function isZh() {
    return (document.documentElement.lang || "").toLowerCase().indexOf("zh") === 0;
  }

  function words() {
    return isZh()
      ? { fit: "适应页面宽度", full: "原始大小", hint: "图较宽，可左右滚动" }
      : { fit: "Fit to page width", full: "Actual size", hint: "Wide diagram: scroll sideways" };
  }

  function scheme() {
    var body = document.body;
    return body && body.getAttribute("data-md-color-scheme") === "slate" ? "dark" : "default";
  }

  function configure() {
    var font = window.getComputedStyle(document.body).fontFamily;
    window.mermaid.initialize({
      startOnLoad: false,
      securityLevel: "strict",
      theme: scheme(),
      fontFamily: font,
      // Natural size: the box around the diagram scrolls instead of shrinking it.
      flowchart: { useMaxWidth: false },
      state: { useMaxWidth: false },
      sequence: { useMaxWidth: false },
      class: { useMaxWidth: false }
    });
  }

  function updateWidth(box) {
    var viewport = box.querySelector(".gridflow-diagram__viewport");
    var svg = viewport && viewport.querySelector("svg");
    if (!svg || !viewport.clientWidth) return;
    var natural = parseFloat(svg.getAttribute("data-natural-width") || "0");
    var wide = natural > viewport.clientWidth + 1;
    box.classList.toggle("gridflow-diagram--wide", wide);
    // A state diagram starts at its top centre: show that part first, once visible.
    if (wide && !box.hasAttribute("data-centred")) {
      viewport.scrollLeft = (viewport.scrollWidth - viewport.clientWidth) / 2;
      box.setAttribute("data-centred", "true");
    }
  }

  function draw(box) {
    var text = box.getAttribute("data-source") || "";
    var id = "gridflow-mermaid-" + (++counter);
    return window.mermaid.render(id, text).then(function (result) {
      var viewport = box.querySelector(".gridflow-diagram__viewport");
      viewport.innerHTML = result.svg;
      var svg = viewport.querySelector("svg");
      if (svg) {
        var viewBox = svg.viewBox && svg.viewBox.baseVal;
        var width = viewBox && viewBox.width ? viewBox.width : svg.getBoundingClientRect().width;
        svg.setAttribute("data-natural-width", String(width));
        svg.style.maxWidth = "none";
        if (result.bindFunctions) result.bindFunctions(svg);
      }
      box.setAttribute("data-rendered", "true");
      updateWidth(box);
    }).catch(function (error) {
      box.setAttribute("data-rendered", "error");
      var viewport = box.querySelector(".gridflow-diagram__viewport");
      viewport.textContent = text;
      viewport.classList.add("gridflow-diagram__error");
      if (window.console) window.console.error("gridflow diagram", error);
    });
  }

  function build(pre) {
    var text = pre.textContent || "";
    var w = words();
    var box = document.createElement("div");
    box.className = "gridflow-diagram";
    box.setAttribute("data-source", text);
    var bar = document.createElement("div");
    bar.className = "gridflow-diagram__toolbar";
    var hint = document.createElement("span");
    hint.className = "gridflow-diagram__hint";
    hint.textContent = w.hint;
    var button = document.createElement("button");
    button.type = "button";
    button.className = "md-button gridflow-diagram__toggle";
    button.textContent = w.fit;
    button.addEventListener("click", function () {
      var fitted = box.classList.toggle("gridflow-diagram--fit");
      button.textContent = fitted ? w.full : w.fit;
    });
    bar.appendChild(hint);
    bar.appendChild(button);
    var viewport = document.createElement("div");
    viewport.className = "gridflow-diagram__viewport";
    viewport.tabIndex = 0;
    box.appendChild(bar);
    box.appendChild(viewport);
    pre.parentNode.replaceChild(box, pre);
    if (window.ResizeObserver) {
      new window.ResizeObserver(function () { updateWidth(box); }).observe(viewport);
    }
    return box;
  }

  // One at a time, page after page: mermaid.render is not re-entrant.
  var queue = Promise.resolve();
  var drawnScheme = null;

  function drawAll(boxes) {
    queue = queue.then(function () {
      drawnScheme = scheme();
      configure();
      return boxes.reduce(function (done, box) {
        return done.then(function () { return draw(box); });
      }, Promise.resolve());
    });
    return queue;
  }

  function renderPage() {
    if (!window.mermaid) return;
    var sources = Array.prototype.slice.call(document.querySelectorAll(SOURCE));
    if (!sources.length) return;
    var boxes = sources.map(build);
    document.documentElement.setAttribute("data-gridflow-diagrams", "drawing");
    drawAll(boxes).then(function () {
      document.documentElement.setAttribute("data-gridflow-diagrams", "done");
    });
  }

  // The light/dark toggle changes the palette: draw again in the matching theme.
  function watchScheme() {
    if (!window.MutationObserver || !document.body) return;
    new window.MutationObserver(function () {
      var boxes = Array.prototype.slice.call(document.querySelectorAll(".gridflow-diagram"));
      if (!boxes.length || !window.mermaid || scheme() === drawnScheme) return;
      drawAll(boxes);
    }).observe(document.body, { attributes: true, attributeFilter: ["data-md-color-scheme"] });
  }

  if (window.document$ && typeof window.document$.subscribe === "function") {
    window.document$.subscribe(renderPage);  // Material's page stream (instant navigation too)
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", renderPage);
  } else {
    renderPage();
  }
  watchScheme();
})();
