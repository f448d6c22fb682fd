#pragma once
// A FIFO of nodes that live elsewhere (in parked coroutine frames), so parking
// allocates nothing. Node needs `prev_`, `next_` and `linked_` members.
namespace coronet::detail {

template <class Node>
class intrusive_list final {
public:
  bool empty() const noexcept { return head_ == nullptr; }
  Node* front() const noexcept { return head_; }

  void push_back(Node* n) noexcept
  {
    n->prev_ = tail_;
    n->next_ = nullptr;
    n->linked_ = true;
    if (tail_)
      tail_->next_ = n;
    else
      head_ = n;
    tail_ = n;
  }

  Node* pop_front() noexcept
  {
    Node* n = head_;
    if (n)
      remove(n);
    return n;
  }

  void remove(Node* n) noexcept
  {
    if (!n->linked_)
      return;
    (n->prev_ ? n->prev_->next_ : head_) = n->next_;
    (n->next_ ? n->next_->prev_ : tail_) = n->prev_;
    n->prev_ = n->next_ = nullptr;
    n->linked_ = false;
  }

private:
  Node* head_ = nullptr;
  Node* tail_ = nullptr;
};

} // namespace coronet::detail
