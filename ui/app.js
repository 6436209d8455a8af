() => {
  // A citation [n] in an answer is a link to #src-<turn>-<n>, the passage in the Sources tab.
  // Show that tab and that answer's passages, open the passage and bring it into view.
  const reveal = (id, turn, tries) => {
    const panel = document.getElementById("sources-panel");
    const target = document.getElementById(id);
    if (!panel || !target) {
      if (tries > 0) setTimeout(() => reveal(id, turn, tries - 1), 50);  // tab still rendering
      return;
    }
    panel.querySelectorAll("section.turn").forEach((s) => {
      s.classList.toggle("current", s.dataset.turn === turn);
    });
    target.open = true;
    target.scrollIntoView({ block: "nearest" });
    target.classList.remove("flash");
    void target.offsetWidth;  // restart the animation
    target.classList.add("flash");
  };

  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest('a[href^="#src-"]');
    if (!link) return;
    event.preventDefault();
    event.stopPropagation();
    const id = link.getAttribute("href").slice(1);
    const turn = id.split("-")[1];
    const tab = document.querySelector('button[role="tab"][data-tab-id="sources"]');
    if (tab && tab.getAttribute("aria-selected") !== "true") tab.click();
    reveal(id, turn, 40);
  }, true);
}
