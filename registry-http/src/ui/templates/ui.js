// Copy buttons: the pull command of a tag to the clipboard.
document.addEventListener('click', (event) => {
  const button = event.target.closest('button.copy');
  if (!button || !navigator.clipboard) return;
  navigator.clipboard.writeText(button.dataset.copy).then(() => {
    button.textContent = 'Copied';
    setTimeout(() => { button.textContent = 'Copy'; }, 1500);
  });
});
